//! Tests of the generated estate and its changes.

use super::*;
use crate::sim::{EstateChange, EstateChangeError};

fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        n_projects: 3,
        n_enterprise_projects: 2,
        registries_per_scope: 40,
        ..SimConfig::default()
    }
}

/// Everything observable about an estate, as one JSON value for comparisons.
fn snapshot(estate: &Estate) -> Value {
    json!({
        "eps": estate.enterprise_project_ids,
        "projects": estate.projects.iter().map(|p| json!({
            "id": p.project_id,
            "scopes": p.scopes.iter().map(|s| json!({"ep": s.enterprise_project_id, "registries": s.registries})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn is_uuid_like(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && text
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn same_seed_and_sizes_give_an_identical_estate() {
    let first = Estate::generate(&config(7));
    let second = Estate::generate(&config(7));
    assert_eq!(snapshot(&first), snapshot(&second));
    assert_eq!(first.registry_count(), 3 * 3 * 40);
}

#[test]
fn different_seeds_give_different_estates() {
    let first = Estate::generate(&config(7));
    let second = Estate::generate(&config(8));
    assert_ne!(first.projects[0].project_id, second.projects[0].project_id);
    assert_ne!(snapshot(&first), snapshot(&second));
}

#[test]
fn ids_have_the_documented_shapes() {
    let estate = Estate::generate(&config(1));
    assert_eq!(estate.enterprise_project_ids[0], "0");
    assert_eq!(estate.enterprise_project_ids.len(), 3);
    assert!(estate.enterprise_project_ids[1..]
        .iter()
        .all(|ep| is_uuid_like(ep)));
    for project in &estate.projects {
        assert_eq!(project.project_id.len(), 32);
        assert!(project
            .project_id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let ids: Vec<&str> = project
            .scopes
            .iter()
            .map(|s| s.enterprise_project_id.as_str())
            .collect();
        assert_eq!(ids, estate.enterprise_project_ids);
    }
}

#[test]
fn generated_registries_follow_the_documented_field_rules() {
    let estate = Estate::generate(&SimConfig {
        registries_per_scope: 300,
        ..config(3)
    });
    let mut seen_types = std::collections::BTreeSet::new();
    let mut seen_statuses = std::collections::BTreeSet::new();
    for registry in estate
        .projects
        .iter()
        .flat_map(|p| &p.scopes)
        .flat_map(|s| &s.registries)
    {
        let field = |name: &str| {
            registry
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        assert!(is_uuid_like(field("id")), "{registry}");
        assert!((1..=128).contains(&field("registry_name").len()));
        let registry_type = field("registry_type");
        assert!([
            "Harbor",
            "Jfrog",
            "SwrPrivate",
            "SwrShared",
            "SwrEnterprise",
            "Other"
        ]
        .contains(&registry_type));
        seen_types.insert(registry_type.to_string());
        assert!(["V1", "V2"].contains(&field("api_version")));
        assert!(["http", "https"].contains(&field("protocol")));
        assert!((1..=256).contains(&field("registry_addr").len()));
        assert!((1..=128).contains(&field("registry_username").len()));
        assert!(is_uuid_like(field("connect_cluster_id")));
        let channel = field("get_scan_image_channel");
        assert!(["Swr", "Other"].contains(&channel));
        assert_eq!(
            registry.get("namespace").is_some(),
            channel == "Other",
            "{registry}"
        );
        let status = field("status");
        assert!(["success", "fail", "accessing"].contains(&status));
        seen_statuses.insert(status.to_string());
        match registry.get("fail_reason").and_then(Value::as_str) {
            Some(reason) => {
                assert_eq!(status, "fail");
                assert!(
                    ["CREATE_JOB_FAILED", "REQUEST_API_ERROR", "SERVER_ERROR"].contains(&reason)
                );
            }
            None => assert_ne!(status, "fail", "{registry}"),
        }
        let images = registry["images_num"].as_i64().unwrap();
        assert!((0..=MAX_IMAGES_NUM).contains(&images));
        let sync = registry["latest_sync_time"].as_i64().unwrap();
        assert!((0..=SYNC_TIME_BASE_MS).contains(&sync));
    }
    assert_eq!(
        seen_types.len(),
        6,
        "every registry type appears in a large estate"
    );
    assert_eq!(seen_statuses.len(), 3);
}

#[test]
fn mutation_is_deterministic_and_changes_the_counts_it_reports() {
    let mutation = Mutation {
        seed: 99,
        n_update: 10,
        n_delete: 5,
        n_add: 7,
    };
    let mut first = Estate::generate(&config(5));
    let mut second = Estate::generate(&config(5));
    let before = snapshot(&first);
    let count_before = first.registry_count();

    let summary = first.mutate(&mutation);

    assert_eq!(summary, second.mutate(&mutation));
    assert_eq!(snapshot(&first), snapshot(&second));
    assert_eq!(
        (
            summary.updated.len(),
            summary.deleted.len(),
            summary.added.len()
        ),
        (10, 5, 7)
    );
    assert_eq!(first.registry_count(), count_before - 5 + 7);
    let all_after: Vec<&Value> = first
        .projects
        .iter()
        .flat_map(|p| &p.scopes)
        .flat_map(|s| &s.registries)
        .collect();
    let all_before: Vec<Value> = before["projects"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["scopes"].as_array().unwrap().clone())
        .flat_map(|s| s["registries"].as_array().unwrap().clone())
        .collect();
    let find =
        |list: &[&Value], id: &str| list.iter().find(|r| r["id"] == id).map(|r| (*r).clone());
    let before_refs: Vec<&Value> = all_before.iter().collect();
    for id in &summary.deleted {
        assert!(find(&all_after, id).is_none(), "deleted {id} is gone");
    }
    for id in &summary.updated {
        assert_ne!(
            find(&all_after, id),
            find(&before_refs, id),
            "updated {id} changed"
        );
        assert!(!summary.deleted.contains(id));
    }
    for id in &summary.added {
        assert!(find(&before_refs, id).is_none() && find(&all_after, id).is_some());
    }
}

#[test]
fn mutation_with_another_seed_touches_other_registries() {
    let mut first = Estate::generate(&config(5));
    let mut second = Estate::generate(&config(5));
    let a = first.mutate(&Mutation {
        seed: 1,
        n_update: 10,
        ..Mutation::default()
    });
    let b = second.mutate(&Mutation {
        seed: 2,
        n_update: 10,
        ..Mutation::default()
    });
    assert_ne!(a.updated, b.updated);
}

#[test]
fn mutation_larger_than_the_estate_is_clamped() {
    let mut estate = Estate::generate(&SimConfig {
        registries_per_scope: 2,
        ..config(5)
    });
    let total = estate.registry_count();
    let summary = estate.mutate(&Mutation {
        seed: 3,
        n_update: 100,
        n_delete: total + 5,
        n_add: 0,
    });
    assert_eq!(summary.deleted.len(), total);
    assert!(summary.updated.is_empty());
    assert_eq!(estate.registry_count(), 0);
}

#[test]
fn set_registries_in_scope_truncates_and_extends_deterministically() {
    let mut first = Estate::generate(&config(5));
    let mut second = Estate::generate(&config(5));
    let project_id = first.projects[0].project_id.clone();
    for estate in [&mut first, &mut second] {
        estate.set_registries_in_scope(5, &project_id, "0", 201);
        assert_eq!(estate.projects[0].scopes[0].registries.len(), 201);
    }
    assert_eq!(snapshot(&first), snapshot(&second));
    first.set_registries_in_scope(5, &project_id, "0", 0);
    assert!(first.projects[0].scopes[0].registries.is_empty());
    first.set_registries_in_scope(5, &project_id, "new-ep", 3);
    assert_eq!(
        first.enterprise_project_ids.last().map(String::as_str),
        Some("new-ep")
    );
    assert_eq!(first.projects[0].scopes.last().unwrap().registries.len(), 3);
}

/// The estate as one string, in the shape used to record the pre-regions fingerprints below.
fn fingerprint_text(estate: &Estate) -> String {
    let projects: Vec<Value> = estate
        .projects
        .iter()
        .map(|p| {
            json!({
                "id": p.project_id,
                "clusters": p.cluster_ids,
                "scopes": p.scopes.iter().map(|s| json!({"ep": s.enterprise_project_id, "registries": s.registries})).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_string(&json!({"eps": estate.enterprise_project_ids, "projects": projects}))
        .unwrap()
}

#[test]
fn single_region_estate_for_seed_42_is_unchanged_from_before_regions_existed() {
    // Recorded with the code before multi-region support (commit d05590a), SimConfig::default().
    let estate = Estate::generate(&SimConfig::default());
    let ids: Vec<&str> = estate
        .projects
        .iter()
        .map(|p| p.project_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "f3453fc625799188ae90bfb5395d5ba1",
            "a09ab2f9581667526d71b708c5b6538c"
        ]
    );
    assert_eq!(
        estate.enterprise_project_ids,
        [
            "0",
            "2663b45b-a45d-429e-89e1-49d8bcb642b0",
            "cdca9b0d-2a12-4884-8edb-bf0150871314"
        ]
    );
    assert_eq!(
        registry_id(&estate.projects[0].scopes[0].registries[0]),
        "ad6c136f-fb87-4371-a33e-9421fc4b10b2"
    );
    let text = fingerprint_text(&estate);
    assert_eq!(
        (fnv1a(text.as_bytes()), text.len()),
        (0x64f0_bbe7_24ff_6eb1, 59_813)
    );

    // The same with three projects, which used to draw the third id where an EP id now sits.
    let estate = Estate::generate(&SimConfig {
        n_projects: 3,
        ..SimConfig::default()
    });
    assert_eq!(
        estate.projects[2].project_id,
        "2663b45ba45d829e49e149d8bcb642b0"
    );
    let text = fingerprint_text(&estate);
    assert_eq!(
        (fnv1a(text.as_bytes()), text.len()),
        (0x562e_cc1a_b113_a83f, 89_334)
    );
    assert!(estate.projects.iter().all(|p| p.region == "cn-north-4"));
    let names: Vec<&str> = estate.projects.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["cn-north-4", "cn-north-4_proj2", "cn-north-4_proj3"]
    );
}

#[test]
fn projects_are_spread_round_robin_over_deduplicated_regions_with_main_and_sub_names() {
    let multi = SimConfig {
        seed: 42,
        n_projects: 5,
        regions: vec![
            "ap-southeast-1".into(),
            "cn-north-4".into(),
            "ap-southeast-1".into(),
        ],
        ..SimConfig::default()
    };
    let estate = Estate::generate(&multi);
    assert_eq!(estate.regions, ["cn-north-4", "ap-southeast-1"]);
    let layout: Vec<(&str, &str)> = estate
        .projects
        .iter()
        .map(|p| (p.region.as_str(), p.name.as_str()))
        .collect();
    assert_eq!(
        layout,
        [
            ("cn-north-4", "cn-north-4"),
            ("ap-southeast-1", "ap-southeast-1"),
            ("cn-north-4", "cn-north-4_proj2"),
            ("ap-southeast-1", "ap-southeast-1_proj2"),
            ("cn-north-4", "cn-north-4_proj3"),
        ]
    );
    assert_eq!(
        estate.main_project("ap-southeast-1").unwrap().project_id,
        estate.projects[1].project_id
    );
    // Deterministic, and the ids do not depend on the regions.
    assert_eq!(
        fingerprint_text(&estate),
        fingerprint_text(&Estate::generate(&multi))
    );
    let single = Estate::generate(&SimConfig {
        n_projects: 5,
        ..SimConfig::default()
    });
    let ids = |e: &Estate| {
        e.projects
            .iter()
            .map(|p| p.project_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&estate), ids(&single));
    // SWR registries of a project carry its own region.
    let swr_addresses: Vec<&str> = estate.projects[1]
        .scopes
        .iter()
        .flat_map(|s| &s.registries)
        .filter_map(|r| r["registry_addr"].as_str())
        .filter(|a| a.starts_with("swr."))
        .collect();
    assert!(!swr_addresses.is_empty());
    assert!(swr_addresses
        .iter()
        .all(|a| *a == "swr.ap-southeast-1.myhuaweicloud.com"));
}

#[test]
fn a_deleted_registry_is_restored_with_its_id_in_its_scope_as_it_was_or_changed() {
    let mut estate = Estate::generate(&config(5));
    let project_id = estate.projects[1].project_id.clone();
    let original = estate.projects[1].scopes[2].registries[4].clone();
    let id = registry_id(&original);
    let delete = EstateChange::Delete { id: id.clone() };
    let restore = |update_seed| EstateChange::Restore {
        id: id.clone(),
        update_seed,
    };

    assert_eq!(estate.apply_change(&delete), Ok(id.clone()));
    assert_eq!(estate.position_of(&id), None);
    assert_eq!(
        estate.apply_change(&delete),
        Err(EstateChangeError::UnknownRegistry(id.clone()))
    );
    assert_eq!(estate.apply_change(&restore(None)), Ok(id.clone()));
    assert_eq!(estate.position_of(&id), Some((1, 2, 39)));
    assert_eq!(estate.projects[1].scopes[2].registries[39], original);
    assert_eq!(
        estate.apply_change(&restore(None)),
        Err(EstateChangeError::AlreadyPresent(id.clone()))
    );

    estate.apply_change(&delete).unwrap();
    estate.apply_change(&restore(Some(8))).unwrap();
    let changed = &estate.projects[1].scopes[2].registries[39];
    assert_eq!(registry_id(changed), id);
    assert_ne!(changed, &original);
    assert!(estate.deleted.is_empty());

    // Drift and random mutations remember what they delete, too.
    let drifted = estate.drift_front(1, &project_id, Some("0"), 0, 2);
    let mutated = estate.mutate(&Mutation {
        seed: 4,
        n_delete: 3,
        ..Mutation::default()
    });
    let mut remembered: Vec<String> = estate
        .deleted
        .iter()
        .map(|d| registry_id(&d.registry))
        .collect();
    let mut expected = [drifted.deleted, mutated.deleted].concat();
    remembered.sort();
    expected.sort();
    assert_eq!(remembered, expected);
    assert_eq!(estate.deleted[0].project_id, project_id);
    assert_eq!(
        estate.apply_change(&EstateChange::Restore {
            id: "never-there".into(),
            update_seed: None
        }),
        Err(EstateChangeError::NeverDeleted("never-there".into()))
    );
}

#[test]
fn a_moved_registry_keeps_its_id_and_content_and_leaves_its_old_scope() {
    let mut estate = Estate::generate(&config(5));
    let count = estate.registry_count();
    let original = estate.projects[0].scopes[0].registries[0].clone();
    let id = registry_id(&original);
    let (from_project, to_project) = (
        estate.projects[0].project_id.clone(),
        estate.projects[2].project_id.clone(),
    );
    let ep = estate.enterprise_project_ids[1].clone();
    let move_to = |project_id: &str, enterprise_project_id: &str| EstateChange::Move {
        id: id.clone(),
        project_id: project_id.to_string(),
        enterprise_project_id: enterprise_project_id.to_string(),
    };

    estate.apply_change(&move_to(&from_project, &ep)).unwrap();
    assert_eq!(estate.position_of(&id), Some((0, 1, 40)));
    estate.apply_change(&move_to(&to_project, "0")).unwrap();
    assert_eq!(estate.position_of(&id), Some((2, 0, 40)));
    assert_eq!(estate.projects[2].scopes[0].registries[40], original);
    assert_eq!(estate.registry_count(), count);
    assert_eq!(
        estate.apply_change(&move_to("nope", "0")),
        Err(EstateChangeError::UnknownProject("nope".into()))
    );

    let added = estate
        .apply_change(&EstateChange::Add {
            project_id: to_project.clone(),
            enterprise_project_id: ep.clone(),
            seed: 3,
        })
        .unwrap();
    assert_eq!(estate.position_of(&added), Some((2, 1, 40)));
    let before = estate.projects[2].scopes[1].registries[40].clone();
    estate
        .apply_change(&EstateChange::Update {
            id: added.clone(),
            seed: 3,
        })
        .unwrap();
    assert_ne!(estate.projects[2].scopes[1].registries[40], before);
}

#[test]
fn drift_front_deletes_the_first_items_and_inserts_new_ones_in_front() {
    let mut estate = Estate::generate(&config(5));
    let project_id = estate.projects[0].project_id.clone();
    let before: Vec<String> = estate.projects[0]
        .scopes
        .iter()
        .flat_map(|s| s.registries.iter().map(registry_id))
        .collect();

    let summary = estate.drift_front(9, &project_id, None, 2, 41);

    let after: Vec<String> = estate.projects[0]
        .scopes
        .iter()
        .flat_map(|s| s.registries.iter().map(registry_id))
        .collect();
    assert_eq!(summary.deleted, before[..41]);
    assert_eq!(summary.added, after[..2]);
    assert_eq!(after[2..], before[41..]);
    assert_eq!(
        estate.projects[0].scopes[1].registries.len(),
        39,
        "deletion spans scopes"
    );
    let mut other = Estate::generate(&config(5));
    assert_eq!(other.drift_front(9, &project_id, None, 2, 41), summary);
    let untouched = estate.drift_front(9, "no-such-project", None, 2, 2);
    assert_eq!(untouched, MutationSummary::default());
}
