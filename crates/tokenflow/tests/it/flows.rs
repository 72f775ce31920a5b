use std::process::Command;

use crate::support::repo;

fn validate(path: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenflow"))
        .args(["flows", "validate", path])
        .env_remove("TOKENFLOW_CONFIG")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_example_flow_is_valid() {
    let dir = repo().join("examples/flows");
    let (ok, text) = validate(dir.to_str().unwrap());
    assert!(ok, "{text}");
    for id in [
        "service_call",
        "user_profile",
        "refresh",
        "branch_on_status",
        "graph_me",
        "graph_users_paged",
        "vault_login",
        "vault_scheduled",
        "vault_refresh_or_login",
        "on_behalf_of",
        "google_service_account",
        "device_login",
    ] {
        assert!(
            text.contains(&format!("(flow `{id}`)")),
            "{id} missing:\n{text}"
        );
    }
}

#[test]
fn validate_prints_every_problem_with_its_position_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "id: bad\nactions:\n  a: { type: nope }\n  b: { type: http_connector, input: { urll: x } }\nsteps:\n  - { from: start, to: b }\n  - { from: b, to: zzz }\n",
    )
    .unwrap();
    let (ok, text) = validate(file.to_str().unwrap());
    assert!(!ok);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 3, "{text}");
    assert!(
        errors[0].contains("bad.yaml:3:14: unknown action type `nope`"),
        "{text}"
    );
    assert!(
        errors[1].contains("bad.yaml:4:39: unknown input `urll`"),
        "{text}"
    );
    assert!(
        errors[2].contains("bad.yaml:7:20: step to unknown action `zzz`"),
        "{text}"
    );
    assert!(text.contains("1 of 1 flow file(s) are invalid"));
}

#[test]
fn malformed_yaml_is_an_error_with_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yml");
    std::fs::write(&file, "id: x\nsteps: [\n").unwrap();
    let (ok, text) = validate(file.to_str().unwrap());
    assert!(!ok);
    assert!(text.contains("broken.yml:2:"), "{text}");
}

#[test]
fn validate_refuses_huge_conditions_with_the_limit_and_exits_instead_of_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let flow = |condition: &str| {
        format!(
            "id: big\nvariables:\n  x: {{}}\nsteps:\n  - {{ from: start, to: stop, when: \"{condition}\" }}\n"
        )
    };
    for (name, condition, size) in [
        ("terms.yaml", vec!["x == 1"; 100_000].join(" || "), 999_996),
        ("parens.yaml", "(".repeat(100_000), 100_000),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, flow(&condition)).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_tokenflow"))
            .args(["flows", "validate", file.to_str().unwrap()])
            .env_remove("TOKENFLOW_CONFIG")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            output.status.code(),
            Some(1),
            "{name}: an exit code, not a signal: {text}"
        );
        assert!(
            text.contains(&format!(
                "{name}:5:36: invalid condition: the condition is {size} bytes long; at most 4096 bytes are allowed"
            )),
            "{name}: {text}"
        );
    }
}

const LOOP: &str = "id: spin\nvariables:\n  v: {}\nactions:\n  again:\n    type: extract_json\n    input: { json: \"[1]\", path: \"$[0]\" }\n    output: { value: v }\nsteps:\n  - { from: start, to: again }\n  - { from: again, to: again, when: \"v == 1\" }\n  - { from: again, to: stop }\n";

fn tokenflow(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenflow"))
        .args(args)
        .env_remove("TOKENFLOW_CONFIG")
        .env_remove("TOKENFLOW_MAX_STEPS_LIMIT")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn validate_refuses_max_steps_above_max_steps_limit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spin.yaml");
    std::fs::write(
        &file,
        LOOP.replace("id: spin\n", "id: spin\nmax_steps: 50000\n"),
    )
    .unwrap();
    let (ok, text) = validate(file.to_str().unwrap());
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "spin.yaml:2:12: max_steps 50000 is above the limit of 10000 (the server's `max_steps_limit`)"
        ),
        "{text}"
    );
    // A configuration that raises the limit (within its safe maximum) accepts it.
    let config = dir.path().join("tokenflow.toml");
    std::fs::write(&config, "max_steps_limit = 50000\n").unwrap();
    let (ok, text) = tokenflow(&[
        "--config",
        config.to_str().unwrap(),
        "flows",
        "validate",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
}

#[test]
fn tokenflow_run_applies_max_steps_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tokenflow.toml");
    std::fs::write(&config, "max_steps_limit = 3\n").unwrap();
    let spin = dir.path().join("spin.yaml");
    std::fs::write(&spin, LOOP).unwrap();
    let (ok, text) = tokenflow(&[
        "--config",
        config.to_str().unwrap(),
        "run",
        spin.to_str().unwrap(),
    ]);
    assert!(!ok, "{text}");
    assert!(text.contains("max_steps (3) reached"), "{text}");

    let declared = dir.path().join("declared.yaml");
    std::fs::write(
        &declared,
        LOOP.replace("id: spin\n", "id: spin\nmax_steps: 4\n"),
    )
    .unwrap();
    let (ok, text) = tokenflow(&[
        "--config",
        config.to_str().unwrap(),
        "run",
        declared.to_str().unwrap(),
    ]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("max_steps 4 is above the limit of 3"),
        "{text}"
    );
}
