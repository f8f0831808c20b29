//! Long-running commands stop on SIGTERM whatever became of their standard output and error.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{estate, Backend, TestApp, ACCESS_KEY, SECRET_KEY};

/// Reads the child's output up to the line holding `marker` (from standard output, or from
/// standard error where the command logs), then closes both pipes, as a reader such as
/// `head` that has what it wanted would, sends SIGTERM, and returns how long the child took
/// to exit, if it did within 10 s.
fn terminate_after_readers_left(
    mut child: Child,
    marker: &str,
    from_stderr: bool,
) -> Option<Duration> {
    let stdout = child.stdout.take().expect("stdout piped");
    let stderr = child.stderr.take().expect("stderr piped");
    let (read, other): (Box<dyn std::io::Read>, Box<dyn std::io::Read>) = if from_stderr {
        (Box::new(stderr), Box::new(stdout))
    } else {
        (Box::new(stdout), Box::new(stderr))
    };
    let mut lines = BufReader::new(read).lines();
    let first = lines
        .find(|line| line.as_ref().map_or(true, |l| l.contains(marker)))
        .and_then(Result::ok)
        .unwrap_or_default();
    drop(lines);
    drop(other);
    assert!(first.contains(marker), "the command printed {marker:?}");
    // Give the command time to write into the closed pipes.
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    while sent.elapsed() < Duration::from_secs(10) {
        if child.try_wait().unwrap().is_some() {
            return Some(sent.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

#[test]
fn simulate_stops_on_sigterm_after_its_readers_have_gone() {
    let child = Command::new(env!("CARGO_BIN_EXE_hss-sync"))
        .args(["simulate", "--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        terminate_after_readers_left(child, "sync it:", false).is_some(),
        "hss-sync simulate ignored SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_on_sigterm_after_its_readers_have_gone() {
    let app = TestApp::spawn(Backend::Sqlite, estate(1, 0, 3)).await;
    let child = Command::new(env!("CARGO_BIN_EXE_hss-sync"))
        .args([
            "run",
            "--region",
            "cn-north-4",
            "--endpoint",
            &app.endpoint(),
            "--project-id",
            &app.sim.project_ids().join(","),
            "--database-url",
            &app.db.url,
            "--max-requests-per-minute",
            "0",
            "--schedule",
            "0 0 0 1 1 *",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("CLOUD_SDK_AK", ACCESS_KEY)
        .env("CLOUD_SDK_SK", SECRET_KEY)
        .env("RUST_LOG", "info")
        .env("HSS_SYNC_LOG_FORMAT", "text")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stopped = tokio::task::spawn_blocking(move || {
        terminate_after_readers_left(child, "service started", true)
    })
    .await
    .unwrap();
    assert!(stopped.is_some(), "hss-sync run ignored SIGTERM");
}
