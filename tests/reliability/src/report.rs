//! The figures the suite prints, and what failed. A scenario adds figures as it measures them
//! and a failure for every promise that did not hold; the summary repeats the figures.

use std::fmt::Display;

#[derive(Default)]
pub struct Report {
    section: String,
    figures: Vec<(String, String)>,
    pub failures: Vec<String>,
}

impl Report {
    /// Starts a scenario's section.
    pub fn section(&mut self, name: &str) {
        println!("\n== {name} ==");
        self.section = name.to_owned();
    }

    /// A measured figure: printed now and in the summary.
    pub fn figure(&mut self, what: impl Display) {
        let line = what.to_string();
        println!("  {line}");
        self.figures.push((self.section.clone(), line));
    }

    /// A note printed now only (progress, a seed).
    pub fn note(&self, what: impl Display) {
        println!("  . {what}");
    }

    /// A promise: a failure when it does not hold.
    pub fn check(&mut self, holds: bool, what: impl Display) -> bool {
        if !holds {
            let what = shorten(&what.to_string(), 600);
            let line = format!("[{}] {what}", self.section);
            println!("  FAILED: {what}");
            self.failures.push(line);
        }
        holds
    }

    /// Prints the summary; true when nothing failed.
    pub fn summary(&self) -> bool {
        println!("\n== summary ==");
        let mut last = "";
        for (section, line) in &self.figures {
            if section != last {
                println!("{section}:");
                last = section;
            }
            println!("  {line}");
        }
        if self.failures.is_empty() {
            println!("\nlost: nothing; every promise held.");
            true
        } else {
            println!("\n{} promise(s) did not hold:", self.failures.len());
            for f in &self.failures {
                println!("  {f}");
            }
            false
        }
    }
}

/// At most `max` characters, marked when cut.
pub fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}… ({} more bytes)", &s[..i], s.len() - i),
        None => s.to_owned(),
    }
}
