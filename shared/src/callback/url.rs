//! Callback URLs: absolute `http` or `https`, with a host and without credentials.

use http::Uri;

/// Longest callback URL accepted.
const MAX_URL: usize = 2048;

/// An absolute `http` or `https` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackUrl(String);

impl CallbackUrl {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if s.len() > MAX_URL {
            return Err(format!("must be at most {MAX_URL} bytes"));
        }
        let uri: Uri = s.parse().map_err(|_| "is not a valid absolute URL".to_owned())?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => return Err(format!("scheme {other:?} is not allowed; use http or https")),
            None => return Err("must be an absolute http(s) URL".into()),
        }
        let host = uri.host().unwrap_or_default();
        if host.is_empty() {
            return Err("must name a host".into());
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err("must not carry credentials; put them in the subscription's headers".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host as written (IPv6 in brackets) and the port, defaulted by scheme.
    pub fn host_and_port(&self) -> (String, u16) {
        let uri: Uri = self.0.parse().expect("checked when parsed");
        let https = uri.scheme_str() == Some("https");
        let host = uri.authority().map_or("", |a| a.host()).to_owned();
        (host, uri.port_u16().unwrap_or(if https { 443 } else { 80 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_urls_must_be_absolute_http() {
        assert!(CallbackUrl::parse("https://api.delivery.com/delivery-service/events").is_ok());
        assert!(CallbackUrl::parse("http://127.0.0.1:9000/hook").is_ok());
        for bad in ["ftp://x/y", "/relative", "https://", "https://user:pw@host/x", "not a url", "file:///etc/passwd"] {
            assert!(CallbackUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
