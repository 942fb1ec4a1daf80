//! The same figures as CloudWatch embedded metric format (EMF) lines, for entry points whose
//! logs CloudWatch reads (the Lambda functions): the recorder collects what the functions above
//! record, and each flush writes one JSON document per set of labels. A histogram keeps at most
//! 100 values between flushes, so flush once per invocation, not on a long timer.

pub use metrics_cloudwatch_embedded::Collector;

/// CloudWatch namespace the figures are published under.
pub const NAMESPACE: &str = "MessageQueue";

/// Installs the EMF recorder as this process's recorder; flush the answer after each invocation.
pub fn install(function: &str) -> Result<&'static Collector, String> {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("function", function.to_owned())
        .init()
        .map_err(|e| format!("cannot start the EMF recorder: {e}"))?;
    super::describe();
    Ok(collector)
}
