//! Every environment variable and every `--flag` that the deployment files and the README name
//! exists in the binary: read from `hss-sync <command> --help` (its options and their
//! `[env: NAME]`), or, for a variable the binary reads without clap (`CLOUD_SDK_AK`,
//! `HUAWEICLOUD_SDK_IAM_ENDPOINT`), from a string literal in `src/` outside its tests.
//!
//! A flag shown with a command (`hss-sync sync --x`, `command: ["run", "--x"]`, a README
//! table row such as `` `--x` (`run`) ``) must be a flag of that command. A few flags belong
//! to other tools (cargo, docker compose, kubectl, the linters of `.ci/run`) or to the
//! benchmarks in `examples/`: those are listed or looked up there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The prefixes of the variables hss-sync reads.
const ENV_PREFIXES: &[&str] = &["HSS_SYNC_", "HSS_SIM_", "CLOUD_SDK_", "HUAWEICLOUD_SDK_"];

/// Flags of other programs that the documents show, and whose they are.
const OTHER_TOOLS_FLAGS: &[(&str, &str)] = &[
    ("--profile", "docker compose"),
    ("--rm", "docker compose run"),
    ("--release", "cargo"),
    ("--example", "cargo run"),
    ("--test", "cargo test"),
    ("--all-targets", "cargo clippy"),
    ("--check", "cargo fmt"),
    ("--locked", "cargo"),
    ("--filter-platform", "cargo metadata"),
    ("--from-literal", "kubectl create secret"),
    ("--strict", "yamllint, kubernetes-validate"),
    ("--builtin-schema", "check-jsonschema"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files checked: compose, the Dockerfile (variables only: its flags are apt's, cargo's
/// and useradd's), every file of the Kubernetes folder, the sample config, the README, and the
/// reference of the terminal reports.
fn documents() -> Vec<(PathBuf, bool)> {
    let mut files = vec![
        (root().join("docker-compose.yml"), true),
        (root().join("Dockerfile"), false),
        (root().join("config/example.toml"), true),
        (root().join("README.md"), true),
        (root().join("docs/reporting-cli.md"), true),
    ];
    let mut kubernetes = Vec::new();
    walk(&root().join("deploy/kubernetes"), &mut kubernetes);
    assert!(
        kubernetes.len() >= 5,
        "the Kubernetes files were not found: {kubernetes:?}"
    );
    files.extend(kubernetes.into_iter().map(|path| (path, true)));
    files
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// What `hss-sync [COMMAND...] --help` shows: its flags and the variables they read.
#[derive(Default, Debug)]
struct Help {
    flags: BTreeSet<String>,
    env: BTreeSet<String>,
    subcommands: Vec<String>,
}

fn help(command: &[&str]) -> Help {
    let output = Command::new(env!("CARGO_BIN_EXE_hss-sync"))
        .args(command)
        .arg("--help")
        .env_clear()
        .output()
        .expect("run hss-sync --help");
    assert!(
        output.status.success(),
        "hss-sync {command:?} --help failed"
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let mut help = Help::default();
    let mut in_commands = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            if line.trim().is_empty() {
                in_commands = false;
            } else if !line.starts_with("   ") {
                // `  name  description`; wrapped descriptions are indented further.
                let name = trimmed.split_whitespace().next().unwrap_or_default();
                if name != "help" {
                    help.subcommands.push(name.to_owned());
                }
            }
            continue;
        }
        // An option's own line: `-h, --help` or `--region <REGION>`; flags named in the
        // descriptions are not definitions.
        let definition = trimmed
            .strip_prefix('-')
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| c == '-' || c.is_ascii_alphabetic());
        if definition {
            if let Some(flag) = flags_in(trimmed).into_iter().next() {
                help.flags.insert(flag);
            }
        }
    }
    // `[env: NAME=]` may be wrapped over two lines.
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for part in flat.split("[env: ").skip(1) {
        let name: String = part.chars().take_while(|&c| is_env_char(c)).collect();
        help.env.insert(name);
    }
    help
}

/// Every command's help, keyed by its words (`sync`, `config check`); `""` is the top level.
fn all_help() -> BTreeMap<String, Help> {
    let mut all = BTreeMap::new();
    let mut pending = vec![Vec::<String>::new()];
    while let Some(words) = pending.pop() {
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let help = help(&args);
        for sub in &help.subcommands {
            let mut next = words.clone();
            next.push(sub.clone());
            pending.push(next);
        }
        all.insert(words.join(" "), help);
    }
    for command in ["sync", "run", "config check", "simulate", "demo"] {
        assert!(
            all.contains_key(command),
            "no `{command}` in {:?}",
            all.keys()
        );
    }
    all
}

fn is_env_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
}

/// The `--long-flags` in `text`, in order.
fn flags_in(text: &str) -> Vec<String> {
    let mut flags = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i + 2 < chars.len() {
        let starts = chars[i] == '-'
            && chars[i + 1] == '-'
            && chars[i + 2].is_ascii_lowercase()
            && (i == 0 || !(chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '-'));
        if starts {
            let name: String = chars[i..]
                .iter()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || **c == '-')
                .collect();
            i += name.len();
            flags.push(name.trim_end_matches('-').to_owned());
        } else {
            i += 1;
        }
    }
    flags
}

/// The variables with one of [`ENV_PREFIXES`] in `text`. A name that ends in `_` is a
/// prefix (`HUAWEICLOUD_SDK_REGION_HSS_<REGION>`).
fn env_names_in(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if is_env_char(c) {
            current.push(c);
            continue;
        }
        if ENV_PREFIXES.iter().any(|p| current.starts_with(p)) {
            names.push(current.clone());
        }
        current.clear();
    }
    names
}

/// The source of the binary and library, without the unit tests at the end of each file.
fn source_without_tests() -> String {
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    files
        .iter()
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            match text.find("#[cfg(test)]") {
                Some(at) => text[..at].to_owned(),
                None => text,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The command a line shows hss-sync running, if any: `hss-sync sync ...`, `cargo run
/// --release -- demo`, `command: ["run", ...]`, `args: ["sync"]`, or a README table row that
/// starts with `` `runs [--limit N]` ``.
fn command_on_line(line: &str, commands: &BTreeMap<String, Help>) -> Option<String> {
    let known = |words: &[&str]| {
        (1..=2).rev().find_map(|n| {
            let name = words.get(..n)?.join(" ");
            commands.contains_key(&name).then_some(name)
        })
    };
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || "[]\",`|".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    for (i, word) in words.iter().enumerate() {
        let after = match *word {
            "hss-sync" | "--" | "command:" | "args:" => &words[i + 1..],
            _ => continue,
        };
        if let Some(command) = known(after) {
            return Some(command);
        }
    }
    let cell = line.strip_prefix("| `")?;
    let words: Vec<&str> = cell
        .split(|c: char| c.is_whitespace() || c == '`')
        .collect();
    known(&words)
}

/// For a row of README's configuration table (`` | `--flag` (`run`) | ... ``): the commands
/// its flags belong to, `sync` (the table's subject) unless the row names others.
fn table_row_commands(line: &str, commands: &BTreeMap<String, Help>) -> Option<Vec<String>> {
    let cell = line.strip_prefix("| `--")?.split(" | ").next()?;
    let named: Vec<String> = cell
        .split('(')
        .skip(1)
        .flat_map(|group| group.split(')').next().unwrap_or("").split(','))
        .map(|word| word.trim().trim_matches('`').to_owned())
        .filter(|word| commands.contains_key(word.as_str()) && !word.is_empty())
        .collect();
    Some(if named.is_empty() {
        vec!["sync".to_owned()]
    } else {
        named
    })
}

#[test]
fn every_variable_and_flag_in_the_deployment_files_and_the_readme_exists() {
    let commands = all_help();
    let known_env: BTreeSet<&str> = commands
        .values()
        .flat_map(|h| h.env.iter().map(String::as_str))
        .collect();
    let known_flags: BTreeSet<&str> = commands
        .values()
        .flat_map(|h| h.flags.iter().map(String::as_str))
        .collect();
    let source = source_without_tests();
    let examples = {
        let mut files = Vec::new();
        walk(&root().join("examples"), &mut files);
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect::<String>()
    };

    let mut unknown = Vec::new();
    let mut n_env = 0;
    let mut n_flags = 0;
    for (path, check_flags) in documents() {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        // The command a line continued with `\` still belongs to.
        let mut continued: Option<String> = None;
        for (number, line) in text.lines().enumerate() {
            let at = format!("{name}:{}", number + 1);
            for env in env_names_in(line) {
                n_env += 1;
                let in_help = known_env.contains(env.as_str());
                let literal = if env.ends_with('_') {
                    format!("\"{env}")
                } else {
                    format!("\"{env}\"")
                };
                if !in_help && !source.contains(&literal) {
                    unknown.push(format!(
                        "{at}: variable {env} is in no --help ([env: ...]) and read nowhere in src/"
                    ));
                }
            }
            if !check_flags {
                continue;
            }
            let command = command_on_line(line, &commands).or(continued.take());
            if line.trim_end().ends_with('\\') {
                continued.clone_from(&command);
            }
            let row_commands = table_row_commands(line, &commands);
            for flag in flags_in(line) {
                n_flags += 1;
                if OTHER_TOOLS_FLAGS.iter().any(|(other, _)| *other == flag) {
                    continue;
                }
                if known_flags.contains(flag.as_str()) {
                    let expected: Vec<String> = match (&row_commands, &command) {
                        (Some(row), _) => row.clone(),
                        (None, Some(command)) => vec![command.clone()],
                        (None, None) => Vec::new(),
                    };
                    for command in expected {
                        if !commands[&command].flags.contains(&flag) {
                            unknown.push(format!(
                                "{at}: {flag} is not a flag of `hss-sync {command}`"
                            ));
                        }
                    }
                    continue;
                }
                let field = flag.trim_start_matches("--").replace('-', "_");
                if line.contains("--example") && examples.contains(&format!("{field}:")) {
                    continue;
                }
                unknown.push(format!("{at}: {flag} is a flag of no hss-sync command"));
            }
        }
    }
    assert!(
        n_env > 50 && n_flags > 50,
        "too few names found ({n_env} variables, {n_flags} flags): is the scan broken?"
    );
    assert!(
        unknown.is_empty(),
        "names in the documents that hss-sync does not know:\n  {}",
        unknown.join("\n  ")
    );
}

#[test]
fn the_scanners_find_what_they_should() {
    assert_eq!(
        flags_in("hss-sync run --run-at-start --listen=x -d --max-run-age-seconds 3 a--b"),
        ["--run-at-start", "--listen", "--max-run-age-seconds"]
    );
    assert_eq!(
        env_names_in("`HUAWEICLOUD_SDK_REGION_HSS_<REGION>`, HSS_SYNC_X=1 DATABASE_URL _TYPE"),
        ["HUAWEICLOUD_SDK_REGION_HSS_", "HSS_SYNC_X"]
    );
}
