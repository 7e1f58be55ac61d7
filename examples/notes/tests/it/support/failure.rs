//! What a refused start or command must look like: [`Failure`].

use std::path::Path;

use super::{Output, files_in};

/// What a start-up failure must look like: exit code 2, exactly one line on stderr,
/// starting with `server: error: ` and naming the setting or path, and no database file
/// created. Every deviation is collected, so one run reports all of them.
pub struct Failure<'a> {
    out: &'a Output,
    line: String,
    problems: Vec<String>,
}

impl<'a> Failure<'a> {
    pub fn of(out: &'a Output) -> Failure<'a> {
        let mut problems = Vec::new();
        if out.code() != Some(2) {
            problems.push(format!("exit status {:?}, expected code 2", out.status));
        }
        let lines: Vec<&str> = out.stderr.lines().collect();
        if lines.len() != 1 {
            problems.push(format!("{} lines on stderr, expected exactly one", lines.len()));
        }
        let line = lines
            .iter()
            .rev()
            .find(|l| l.starts_with("server: error: "))
            .copied()
            .unwrap_or("")
            .to_string();
        if line.len() <= "server: error: ".len() {
            problems.push("no non-empty `server: error: ` line".to_string());
        }
        Failure { out, line, problems }
    }

    pub fn mentions(mut self, words: &[&str]) -> Self {
        for word in words {
            if !self.line.contains(word) {
                self.problems.push(format!("the error line does not mention `{word}`"));
            }
        }
        self
    }

    /// Neither stdout nor stderr contains `secret` (e.g. the rejected value of a key).
    pub fn never_shows(mut self, secret: &str) -> Self {
        if self.out.stdout.contains(secret) || self.out.stderr.contains(secret) {
            self.problems.push(format!("the output shows the secret value `{secret}`"));
        }
        self
    }

    /// No `app.db*` file was created in `dir`.
    pub fn no_database(mut self, dir: &Path) -> Self {
        let created: Vec<String> =
            files_in(dir).into_iter().filter(|f| f.starts_with("app.db")).collect();
        if !created.is_empty() {
            self.problems.push(format!("database files were created: {created:?}"));
        }
        self
    }

    pub fn check(self) {
        assert!(
            self.problems.is_empty(),
            "start-up failure not as expected:\n- {}\nstdout:\n{}stderr:\n{}",
            self.problems.join("\n- "),
            self.out.stdout,
            self.out.stderr
        );
    }
}
