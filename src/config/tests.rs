//! Unit tests of the configuration: layering, validation, the file's problems, `config check`.

use std::collections::HashMap;

use super::*;
use crate::sync::DEFAULT_PAGE_LIMIT;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn overrides() -> Overrides {
    Overrides {
        region: Some("cn-north-4".to_owned()),
        project_ids: vec!["p1".to_owned(), "p2".to_owned(), "p1".to_owned()],
        ..Default::default()
    }
}

const KEYS: &[(&str, &str)] = &[
    ("CLOUD_SDK_AK", "AKEXAMPLE"),
    ("CLOUD_SDK_SK", "secret-value"),
];

#[test]
fn defaults_give_one_all_granted_scope_per_project_and_sqlite() {
    let config = SyncConfig::build(overrides(), RawConfig::default(), env_of(KEYS)).unwrap();
    let scopes: Vec<String> = config
        .explicit_scopes()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        scopes,
        [
            "cn-north-4/p1/all_granted_eps",
            "cn-north-4/p2/all_granted_eps"
        ]
    );
    assert_eq!(config.database_url, "sqlite://hss-sync.db");
    assert_eq!(config.page_limit, 200);
    assert_eq!(
        config
            .hss_endpoint("cn-north-4", |_| None)
            .unwrap()
            .as_str(),
        "https://hss.cn-north-4.myhuaweicloud.com/"
    );
}

#[test]
fn flags_win_over_the_file_and_the_file_fills_the_rest() {
    let file: RawConfig = toml::from_str(
        r#"
        region = "eu-west-101"
        project_ids = ["fileproject"]
        enterprise_project_ids = ["0", "ep1"]
        page_limit = 50
        [filters]
        registry_type = "Harbor"
        "#,
    )
    .unwrap();
    let config = SyncConfig::build(overrides(), file, env_of(KEYS)).unwrap();
    assert_eq!(config.region.as_deref(), Some("cn-north-4"));
    assert_eq!(config.explicit_scopes().len(), 4);
    assert_eq!(config.page_limit, 50);
    assert_eq!(config.filters.registry_type.as_deref(), Some("Harbor"));
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let bad = Overrides {
        region: None,
        project_ids: vec![],
        enterprise_project_ids: vec!["all_granted_eps".to_owned(), "ep1".to_owned()],
        page_limit: Some(500),
        database: DatabaseArgs {
            database_url: Some("mysql://x".to_owned()),
        },
        ..Default::default()
    };
    let error = SyncConfig::build(bad, RawConfig::default(), env_of(&[])).unwrap_err();
    let keys: Vec<&str> = error
        .problems
        .iter()
        .map(|p| p.split(':').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "region",
            "project_ids",
            "enterprise_project_ids",
            "page_limit",
            "database_url",
            "credentials"
        ]
    );
}

#[test]
fn secrets_never_appear_in_errors_or_debug_output() {
    let config = SyncConfig::build(overrides(), RawConfig::default(), env_of(KEYS)).unwrap();
    assert!(!format!("{config:?}").contains("secret-value"));
    assert!(!config.auth_description().contains("secret-value"));
    let half = SyncConfig::build(
        overrides(),
        RawConfig::default(),
        env_of(&[("CLOUD_SDK_SK", "secret-value")]),
    )
    .unwrap_err();
    assert!(!half.to_string().contains("secret-value"));
    let file: RawConfig =
        toml::from_str("[credentials]\naccess_key = \"A\"\nsecret_key = \"secret-value\"").unwrap();
    assert!(!format!("{file:?}").contains("secret-value"));
}

#[test]
fn an_auth_token_is_used_when_no_access_key_is_set() {
    let config = SyncConfig::build(
        overrides(),
        RawConfig::default(),
        env_of(&[("HSS_SYNC_AUTH_TOKEN", "tok")]),
    )
    .unwrap();
    assert!(matches!(config.credentials, CredentialConfig::Token(_)));
}

#[test]
fn the_example_config_file_parses_and_validates() {
    let file = RawConfig::parse(include_str!("../../config/example.toml"), "example.toml").unwrap();
    assert_eq!(file.service.schedule.as_deref(), Some("0 */15 * * * *"));
    let config = SyncConfig::build(Overrides::default(), file, env_of(KEYS)).unwrap();
    assert_eq!(config.client.max_requests_per_minute, 5);
    assert_eq!(config.explicit_scopes().len(), 1);
}

#[test]
fn unknown_config_keys_are_rejected() {
    assert!(toml::from_str::<RawConfig>("regoin = \"x\"").is_err());
}

#[cfg(unix)]
#[test]
fn a_config_file_with_a_secret_readable_by_others_gets_a_warning_without_the_secret() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hss-sync.toml");
    let chmod =
        |mode| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::write(
        &path,
        "database_url = \"postgres://u:db-password-value@h/db\"\n\
         [credentials]\naccess_key = \"AK\"\nsecret_key = \"secret-key-value\"\n",
    )
    .unwrap();

    chmod(0o644);
    let config = RawConfig::load(&path).unwrap();
    let warning = exposed_secrets_warning(&path, &config).expect("a warning");
    assert!(warning.contains("secret_key"), "{warning}");
    assert!(warning.contains("database_url"), "{warning}");
    assert!(warning.contains("0644"), "{warning}");
    assert!(warning.contains("chmod 600"), "{warning}");
    assert!(!warning.contains("secret-key-value"), "{warning}");
    assert!(!warning.contains("db-password-value"), "{warning}");

    chmod(0o640);
    let warning = exposed_secrets_warning(&path, &config).expect("a warning");
    assert!(warning.contains("its group read it"), "{warning}");

    chmod(0o600);
    assert_eq!(exposed_secrets_warning(&path, &config), None);

    // No secret, no warning, whoever may read the file.
    std::fs::write(&path, "region = \"cn-north-4\"\n").unwrap();
    chmod(0o644);
    let config = RawConfig::load(&path).unwrap();
    assert_eq!(exposed_secrets_warning(&path, &config), None);
}

/// Parses `text` as a config file and returns its problems.
#[track_caller]
fn problems_of(text: &str) -> Vec<String> {
    RawConfig::parse(text, "config file t.toml").unwrap_err()
}

#[test]
fn every_misspelled_key_is_reported_with_its_line() {
    let problems = problems_of(
        "regoin = \"cn-north-4\"\nproject_ids = [\"p1\"]\npage_limt = 50\n[service]\nschedul = \"* * * * *\"\n",
    );
    assert_eq!(
        problems,
        [
            "regoin: unknown key; did you mean region? (config file t.toml, line 1, column 1)",
            "page_limt: unknown key; did you mean page_limit? (config file t.toml, line 3, column 1)",
            "service.schedul: unknown key; did you mean schedule? (config file t.toml, line 5, column 1)",
        ]
    );
}

#[test]
fn a_value_of_the_wrong_type_names_its_key_and_line_and_every_one_is_reported() {
    let problems = problems_of(
        "region = \"cn-north-4\"\npage_limit = \"0\"\n[filters]\nstatus = 3\n[service]\nlease_seconds = \"x\"\n",
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("page_limit: invalid type: string \"0\", expected u32"));
    assert!(problems[0].ends_with("(config file t.toml, line 2, column 1)"));
    assert!(
        problems[1].starts_with("filters.status: "),
        "{}",
        problems[1]
    );
    assert!(problems[1].contains("line 4"), "{}", problems[1]);
    assert!(
        problems[2].starts_with("service.lease_seconds: "),
        "{}",
        problems[2]
    );
    assert!(problems[2].contains("line 6"), "{}", problems[2]);
}

#[test]
fn a_toml_syntax_error_names_its_line() {
    let problems = problems_of("region = \"cn-north-4\"\n\npage_limit = \n");
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("config file t.toml: TOML syntax error at line 3, column 14"),
        "{}",
        problems[0]
    );
}

#[test]
fn accept_deletions_is_not_a_file_key_and_a_section_must_be_a_table() {
    let problems = problems_of("accept_deletions = true\nfilters = 3\n");
    assert!(
        problems[0].starts_with("accept_deletions: unknown key"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("filters: must be a table"),
        "{problems:?}"
    );
}

#[test]
fn flags_win_over_the_file_which_wins_over_the_defaults_for_every_layer_kind() {
    let file = RawConfig::parse(
        "page_limit = 50\nconcurrency = 2\ndatabase_url = \"sqlite://file.db\"\n[service]\nlease_seconds = 30\n",
        "t",
    )
    .unwrap();
    let flags = RawConfig {
        concurrency: Some(8),
        service: ServiceSettings {
            lease_seconds: Some(60),
            ..ServiceSettings::default()
        },
        ..overrides()
    };
    let config = Config::build(&flags, &file, env_of(KEYS)).unwrap();
    assert_eq!(config.sync.page_limit, 50);
    assert_eq!(config.sync.concurrency, 8);
    assert_eq!(config.sync.max_rewalks, crate::sync::DEFAULT_MAX_REWALKS);
    assert_eq!(config.sync.database_url, "sqlite://file.db");
    assert_eq!(config.service.lease.as_secs(), 60);
    assert_eq!(
        database_url(&DatabaseArgs::default(), &file).unwrap(),
        "sqlite://file.db"
    );
    assert_eq!(
        database_url(&DatabaseArgs::default(), &RawConfig::default()).unwrap(),
        DEFAULT_DATABASE_URL
    );
}

#[test]
fn the_effective_configuration_is_toml_that_gives_itself_back() {
    let file = RawConfig::parse(
        "region = \"eu-west-101\"\nproject_ids = [\"p1\"]\ndatabase_url = \"postgres://u:pw-value@h/db\"\n[service]\nschedule = \"*/5 * * * *\"\n",
        "t",
    )
    .unwrap();
    let config = Config::build(&RawConfig::default(), &file, env_of(KEYS)).unwrap();
    let printed = config.to_toml();
    assert!(!printed.contains("secret-value"), "{printed}");
    assert!(!printed.contains("pw-value"), "{printed}");
    for expected in [
        "enterprise_project_ids = [\"all_granted_eps\"]",
        "endpoint = \"https://hss.eu-west-101.myhuaweicloud.eu/\"",
        "iam_endpoint = \"https://iam.eu-west-101.myhuaweicloud.eu/\"",
        "auth_mode = \"aksk\"",
        "secret_key = \"[redacted]\"",
        "schedule = \"0 */5 * * * *\"",
        "max_run_age_seconds = 3600",
    ] {
        assert!(
            printed.contains(expected),
            "{expected} missing from:\n{printed}"
        );
    }

    // Fed back, with the database URL given again (its password was redacted).
    let again = RawConfig::parse(&printed, "printed").unwrap();
    let flags = RawConfig {
        database: DatabaseArgs {
            database_url: Some("postgres://u:pw-value@h/db".to_owned()),
        },
        ..RawConfig::default()
    };
    let rebuilt = Config::build(&flags, &again, env_of(KEYS)).unwrap();
    assert_eq!(rebuilt.effective, config.effective);
    assert_eq!(rebuilt.to_toml(), printed);
}

#[test]
fn a_redacted_secret_fed_back_is_an_error_unless_the_environment_gives_it() {
    let file = RawConfig::parse(
        "region = \"cn-north-4\"\nproject_ids = [\"p1\"]\ndatabase_url = \"postgres://u:***@h/db\"\n\
         [credentials]\naccess_key = \"AK\"\nsecret_key = \"[redacted]\"\n",
        "t",
    )
    .unwrap();
    let error = Config::build(&RawConfig::default(), &file, env_of(&[])).unwrap_err();
    let keys: Vec<&str> = error
        .problems
        .iter()
        .map(|p| p.split(':').next().unwrap())
        .collect();
    assert_eq!(keys, ["database_url", "credentials"], "{error}");
    assert!(error.problems[1].contains("CLOUD_SDK_SK"), "{error}");

    let flags = RawConfig {
        database: DatabaseArgs {
            database_url: Some("sqlite://x.db".to_owned()),
        },
        ..RawConfig::default()
    };
    let config = Config::build(&flags, &file, env_of(KEYS)).unwrap();
    assert_eq!(config.sync.database_url, "sqlite://x.db");
}

#[test]
fn help_shows_the_defaults_from_the_constants() {
    use clap::CommandFactory;

    let help = crate::cli::Cli::command()
        .find_subcommand_mut("run")
        .unwrap()
        .render_help()
        .to_string();
    for expected in [
        format!("[default: {DEFAULT_PAGE_LIMIT}]"),
        format!("[default: {DEFAULT_MAX_REQUESTS_PER_MINUTE}]"),
        format!("[default: {DEFAULT_DATABASE_URL}]"),
        format!("[default: {}]", crate::api::endpoint::DEFAULT_IAM_ENDPOINT),
        format!("[default: {}]", service::DEFAULT_LEASE.as_secs()),
        format!("[default: {}]", crate::service::DEFAULT_SCHEDULE),
    ] {
        assert!(help.contains(&expected), "{expected} missing from:\n{help}");
    }
    let page_limit = help
        .lines()
        .skip_while(|l| !l.contains("--page-limit"))
        .take(3)
        .collect::<String>();
    assert!(
        page_limit.contains(&format!("[default: {DEFAULT_PAGE_LIMIT}]")),
        "{page_limit}"
    );
}

#[test]
fn a_flag_too_large_for_toml_is_named_by_its_key() {
    let flags = RawConfig {
        service: ServiceSettings {
            lease_seconds: Some(u64::MAX),
            ..ServiceSettings::default()
        },
        ..overrides()
    };
    let error = Config::build(&flags, &RawConfig::default(), env_of(KEYS)).unwrap_err();
    assert_eq!(
        error.problems,
        [format!(
            "service.lease_seconds: {} is larger than {}",
            u64::MAX,
            i64::MAX
        )]
    );
}
