//! The docs say what the code does: code fences that close, command lines the binary accepts,
//! and the README's claims about flags. A page a user follows must be true.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![repo().join("README.md")];
    walk(&repo().join("docs"), &mut files);
    files
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_penpot-operator")).args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// A fence is a line of its own: text after a closing fence (or a fence inside a line) swallows
/// the rest of the page into a code block.
#[test]
fn every_code_fence_opens_and_closes_on_a_line_of_its_own() {
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut open = false;
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix("```") {
                if open {
                    assert!(
                        rest.trim().is_empty(),
                        "{}:{}: text after a closing fence: {line:?}",
                        file.display(),
                        n + 1
                    );
                }
                open = !open;
            } else {
                assert!(!line.contains("```"), "{}:{}: a fence inside a line: {line:?}", file.display(), n + 1);
            }
        }
        assert!(!open, "{}: a code fence is never closed", file.display());
    }
}

/// Every `--flag` the README's command table names for a command exists in that command's
/// `--help`, and the profile flags shown as required are required.
#[test]
fn the_readme_command_table_matches_the_binary() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let table: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `penpot-operator ")).collect();
    assert!(table.len() >= 5, "the command table moved: {table:?}");
    for row in table {
        let usage = row.split('|').nth(1).unwrap_or_default();
        let command = usage.trim().trim_matches('`').split_whitespace().nth(1).unwrap_or_default();
        let command: Vec<&str> = match command {
            "profile" => vec!["profile", if usage.contains("profile create") { "create" } else { "delete" }],
            other => vec![other.split('\\').next().unwrap_or(other)],
        };
        let help = help(&command);
        for flag in row
            .split(|c: char| c.is_whitespace() || c == '`' || c == '[' || c == ']' || c == ',')
            .filter(|w| w.starts_with("--") && w.len() > 2)
        {
            let flag = flag.split('=').next().unwrap_or(flag);
            if flag == "--help" {
                continue;
            }
            assert!(
                help.contains(flag),
                "README names {flag} for `penpot-operator {}`; --help has no such flag",
                command.join(" ")
            );
        }
    }
    let create = help(&["profile", "create"]);
    assert!(create.contains("--fullname <FULLNAME>"), "{create}");
    assert!(!readme.contains("[--fullname"), "the README shows the required --fullname as optional");
}

/// The README says every flag of `run` also reads an environment variable.
#[test]
fn every_run_flag_reads_an_environment_variable() {
    let help = help(&["run"]);
    let mut flags = 0;
    let lines: Vec<&str> = help.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if !trimmed.starts_with("--") || trimmed.starts_with("--help") {
            continue;
        }
        flags += 1;
        // clap prints `[env: NAME=]` on the flag's own line or in its description below.
        let block: String =
            lines[i..].iter().take_while(|l| *l == line || !l.trim_start().starts_with('-')).copied().collect();
        assert!(
            block.contains("[env: "),
            "`run {}` reads no environment variable:\n{block}",
            trimmed.split_whitespace().next().unwrap_or_default()
        );
    }
    assert!(flags >= 8, "{help}");
}
