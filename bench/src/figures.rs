//! Figures gathered over repeated rounds, reported as median and spread.

/// One figure per repetition.
#[derive(Debug, Default)]
pub(crate) struct Figure {
    values: Vec<f64>,
}

impl Figure {
    pub(crate) fn median(&self) -> f64 {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }

    pub(crate) fn spread(&self) -> String {
        let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.values.iter().copied().fold(0.0, f64::max);
        format!("{}–{}", figure(min), figure(max))
    }
}

/// Named figures, in the order they were first measured.
#[derive(Debug, Default)]
pub(crate) struct Figures(Vec<(String, Figure)>);

impl Figures {
    pub(crate) fn put(&mut self, name: String, value: f64) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, f)) => f.values.push(value),
            None => self.0.push((name, Figure { values: vec![value] })),
        }
    }

    pub(crate) fn median(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, f)| f.median())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(String, Figure)> {
        self.0.iter()
    }

    /// A Markdown table of every figure, with the throughputs `compared` picks as a ratio to
    /// the baseline at the same count of connections (or consumers).
    pub(crate) fn print_with_ratios(&self, rounds: usize, secs: u64, compared: impl Fn(&str) -> bool) {
        println!("{rounds} rounds, closed loops of {secs} s; medians and spread");
        println!("| scenario | median | spread | ratio to baseline |");
        println!("|---|---:|---:|---:|");
        for (name, f) in self.iter() {
            let conns = name
                .split(", ")
                .find_map(|p| p.strip_suffix(" connections").or_else(|| p.strip_suffix(" consumers")))
                .and_then(|n| n.rsplit(' ').next());
            let throughput = compared(name) && !name.ends_with(" ms") && !name.contains("error");
            let reference =
                conns.filter(|_| throughput).and_then(|c| self.median(&format!("baseline, {c} connections")));
            let ratio = reference.filter(|b| *b > 0.0).map_or(String::new(), |b| format!("{:.2}x", f.median() / b));
            println!("| {name} | {} | {} | {ratio} |", figure(f.median()), f.spread());
        }
    }
}

/// Small figures (milliseconds, megabytes) with two decimals, rates as whole numbers.
pub(crate) fn figure(value: f64) -> String {
    if value < 100.0 { format!("{value:.2}") } else { format!("{value:.0}") }
}
