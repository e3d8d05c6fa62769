//! `uploader`: each subcommand lists only the options it uses.

use std::process::Command;

fn help(subcommand: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_uploader"))
        .args([subcommand, "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "uploader {subcommand} --help");
    String::from_utf8(out.stdout).unwrap()
}

fn options(help: &str) -> Vec<String> {
    help.split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches([',', '.']).to_owned())
        .collect()
}

#[test]
fn each_subcommand_shows_only_the_options_it_uses() {
    let server = ["--addr", "--max-backlog", "--header-timeout", "--parameter"];
    let store = ["--data-dir", "--backend", "--table", "--bucket"];
    for (subcommand, has, has_not) in [
        (
            "process",
            &["--out", "--renditions"][..],
            [&server[..], &store[..]].concat(),
        ),
        (
            "upload",
            &["--url", "--api-key"][..],
            [&server[..], &store[..]].concat(),
        ),
        (
            "items",
            &["--status", "--data-dir", "--backend"][..],
            server.to_vec(),
        ),
        ("ingest", &["--data-dir", "--backend"][..], server.to_vec()),
        (
            "redrive",
            &["--data-dir"][..],
            [&server[..], &["--out", "--url"][..]].concat(),
        ),
        (
            "serve",
            &["--addr", "--max-backlog", "--data-dir"][..],
            vec!["--out", "--renditions", "--url"],
        ),
    ] {
        let listed = options(&help(subcommand));
        for option in has {
            assert!(
                listed.iter().any(|o| o == option),
                "uploader {subcommand}: no {option} in {listed:?}"
            );
        }
        for option in has_not {
            assert!(
                !listed.iter().any(|o| o == option),
                "uploader {subcommand} lists {option}"
            );
        }
    }
}

#[test]
fn a_data_dir_before_a_subcommand_that_keeps_no_data_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_uploader"))
        .args(["--data-dir", "x", "upload", "nothing.jpg"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keeps no data"), "{err}");
}
