//! The real binary writing to a pipe whose reader has gone (`hss-sync demo | head`): it ends
//! quietly with 141, as a Unix tool killed by SIGPIPE does, never with a panic (101) or an
//! `error: Broken pipe` message.

use std::io::{BufRead, BufReader, PipeWriter, Read};
use std::process::{Command, Stdio};

/// What a shell shows for a process ended by SIGPIPE (128 + 13).
const EXIT_BROKEN_PIPE: i32 = 141;

/// The writing end of a pipe whose reading end is already closed: every write fails with
/// EPIPE, from the first one on.
fn closed_pipe() -> PipeWriter {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer
}

/// `hss-sync demo` on a small estate, writing its database into `dir`.
fn demo(dir: &tempfile::TempDir, rust_log: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hss-sync"));
    command
        .args(["demo", "--registries-per-scope", "5", "--database-file"])
        .arg(dir.path().join("demo.db"))
        .env_remove("HSS_SYNC_CONFIG")
        .stdin(Stdio::null());
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    command
}

#[test]
fn standard_output_closed_before_the_first_line_ends_quietly_with_141() {
    let dir = tempfile::tempdir().unwrap();
    let output = demo(&dir, None)
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .expect("run hss-sync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(EXIT_BROKEN_PIPE), "{stderr}");
    assert_eq!(stderr, "", "nothing on standard error");
}

#[test]
fn a_reader_that_stops_after_one_line_ends_it_quietly() {
    // `hss-sync demo | head -n 1`.
    let dir = tempfile::tempdir().unwrap();
    let mut child = demo(&dir, None)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hss-sync");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "hss-sync demo\n");
    // The reader is dropped here, normally long before the demo's first sync has finished.
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    // 141 unless the whole demo fitted into the pipe before the reader went (a very slow
    // test thread): either way, quietly.
    assert!(
        matches!(status.code(), Some(EXIT_BROKEN_PIPE | 0)),
        "{status:?}: {stderr}"
    );
    assert_eq!(stderr, "", "nothing on standard error");
}

#[test]
fn standard_output_and_error_on_one_closed_pipe_do_not_panic() {
    // `hss-sync demo 2>&1 | head -n 0`: the "error: Broken pipe" message itself would fail.
    let dir = tempfile::tempdir().unwrap();
    let pipe = closed_pipe();
    let status = demo(&dir, Some("info"))
        .stderr(pipe.try_clone().unwrap())
        .stdout(pipe)
        .status()
        .expect("run hss-sync");
    assert_eq!(status.code(), Some(EXIT_BROKEN_PIPE));
}

#[test]
fn logs_to_a_closed_standard_error_neither_stop_nor_panic_the_command() {
    // `hss-sync demo 2>&1 >/dev/null | head -n 0` with every info event logged.
    let dir = tempfile::tempdir().unwrap();
    let output = demo(&dir, Some("info"))
        .stdout(Stdio::piped())
        .stderr(closed_pipe())
        .output()
        .expect("run hss-sync");
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("query it yourself"));
}
