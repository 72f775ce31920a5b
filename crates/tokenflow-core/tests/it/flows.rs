//! Flow parsing and validation: every error names the file, line and column.

use std::collections::BTreeSet;

use tokenflow_core::flow::{Binding, Condition, ParseOptions, parse_flow};

fn errors(yaml: &str) -> Vec<String> {
    match parse_flow("bad.yaml", yaml, &ParseOptions::default()) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(problems) => problems.0.iter().map(ToString::to_string).collect(),
    }
}

fn one_error(yaml: &str) -> String {
    let errors = errors(yaml);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

const FLOW_EXAMPLE: &str = r#"id: graph_me
description: Sign the user in with Microsoft and read their profile.
variables:
  token: { secret: true }
  refresh: { secret: true }
  status: {}
  profile: {}
actions:
  login:
    type: oauth_user_login
    oauth_server: entra
    input: { scope: "User.Read offline_access", use_prompt: false }
    output: { access_token: token, refresh_token: refresh, status_code: status }
  me:
    type: http_connector
    input: { url: "https://graph.microsoft.com/v1.0/me", bearer_token: { var: token } }
    output: { content: profile }
steps:
  - { from: start, to: login }
  - { from: login, to: me, when: successful }
  - { from: login, to: stop, when: not_successful }
  - { from: me, to: stop }
"#;

#[test]
fn the_spec_example_is_valid() {
    let parsed = parse_flow("graph_me.yaml", FLOW_EXAMPLE, &ParseOptions::default()).unwrap();
    let flow = parsed.flow;
    assert_eq!(flow.id, "graph_me");
    assert_eq!(flow.actions.keys().collect::<Vec<_>>(), ["login", "me"]);
    let login = &flow.actions["login"];
    assert_eq!(login.oauth_server.as_deref(), Some("entra"));
    assert_eq!(login.inputs["use_prompt"], Binding::Const(false.into()));
    assert_eq!(
        flow.actions["me"].inputs["bearer_token"],
        Binding::Var("token".into())
    );
    assert!(
        !flow.actions["me"].inputs.contains_key("method"),
        "absent means unassigned"
    );
    assert!(matches!(flow.steps[1].when, Condition::Successful));
    assert!(flow.is_secret("token") && flow.is_secret("refresh"));
    assert!(!flow.is_system_flow());
}

#[test]
fn token_outputs_make_their_variables_secret() {
    let yaml = FLOW_EXAMPLE.replace("  token: { secret: true }", "  token: {}");
    let flow = parse_flow("f.yaml", &yaml, &ParseOptions::default())
        .unwrap()
        .flow;
    assert!(flow.is_secret("token"));
    assert!(!flow.is_secret("status"));
}

#[test]
fn unknown_action_type_is_reported_at_the_type() {
    let e = one_error(
        "id: f\nactions:\n  a:\n    type: oauth_magic\nsteps:\n  - { from: start, to: a }\n  - { from: a, to: stop }\n",
    );
    assert!(
        e.starts_with("bad.yaml:4:11: unknown action type `oauth_magic`"),
        "{e}"
    );
}

#[test]
fn unknown_input_and_output_names_are_reported_at_the_key() {
    let errs = errors(
        "id: f\nvariables:\n  t: {}\nactions:\n  a:\n    type: oauth_server_login\n    oauth_server: s\n    input: { scopes: x }\n    output: { token: t }\nsteps:\n  - { from: start, to: a }\n  - { from: a, to: stop }\n",
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "bad.yaml:8:14: unknown input `scopes` for oauth_server_login (known: scope, resource)"
        ),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with("bad.yaml:9:15: unknown output `token`"),
        "{}",
        errs[1]
    );
}

#[test]
fn unknown_variables_are_reported_where_used() {
    let errs = errors(
        "id: f\nvariables:\n  t: {}\nactions:\n  a:\n    type: http_connector\n    input: { url: \"https://x/{user}\", bearer_token: { var: tok } }\n    output: { content: body }\nsteps:\n  - { from: start, to: a }\n  - { from: a, to: stop, when: \"code == 200\" }\n",
    );
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(
        errs[0].contains(":7:19: unknown variable `user`"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].contains(":7:53: unknown variable `tok`"),
        "{}",
        errs[1]
    );
    assert!(
        errs[2].contains(":8:24: unknown variable `body`"),
        "{}",
        errs[2]
    );
    assert!(
        errs[3].contains(":11:32: unknown variable `code` in condition"),
        "{}",
        errs[3]
    );
}

#[test]
fn unreachable_action_is_reported() {
    let e = one_error(
        "id: f\nactions:\n  a: { type: stop }\n  b: { type: stop }\nsteps:\n  - { from: start, to: a }\n",
    );
    assert_eq!(e, "bad.yaml:4:3: action `b` is unreachable from `start`");
}

#[test]
fn an_action_with_no_path_to_stop_is_reported() {
    let e = one_error(
        "id: f\nactions:\n  a: { type: extract_json }\n  b: { type: extract_json }\nsteps:\n  - { from: start, to: a }\n  - { from: a, to: stop, when: successful }\n  - { from: a, to: b, when: not_successful }\n  - { from: b, to: b }\n",
    );
    assert_eq!(e, "bad.yaml:4:3: no path from action `b` reaches `stop`");
}

#[test]
fn steps_to_and_from_unknown_actions_are_reported() {
    let errs =
        errors("id: f\nsteps:\n  - { from: start, to: nowhere }\n  - { from: ghost, to: stop }\n");
    assert!(
        errs[0].starts_with("bad.yaml:3:24: step to unknown action `nowhere`"),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with("bad.yaml:4:13: step from unknown action `ghost`"),
        "{errs:#?}"
    );
}

#[test]
fn a_user_login_in_a_scheduled_flow_is_rejected() {
    let e = one_error(
        "id: f\nschedule: \"*/5 * * * *\"\nactions:\n  login: { type: oauth_user_login, oauth_server: s }\nsteps:\n  - { from: start, to: login }\n  - { from: login, to: stop }\n",
    );
    assert!(
        e.starts_with("bad.yaml:4:3: `login` is an oauth_user_login action, which needs a person"),
        "{e}"
    );
}

#[test]
fn unknown_yaml_fields_are_rejected_with_their_position() {
    let e = one_error("id: f\nactons: {}\nsteps: []\n");
    assert!(e.starts_with("bad.yaml:2:1: unknown field `actons`"), "{e}");
    let e = one_error("id: f\nactions:\n  a:\n    type: stop\n    inputs: {}\n");
    assert!(e.starts_with("bad.yaml:5:5: unknown field `inputs`"), "{e}");
}

#[test]
fn malformed_yaml_and_wrong_types_are_reported() {
    let e = one_error("id: f\nactions: [\n");
    assert!(e.starts_with("bad.yaml:2:"), "{e}");
    let e = one_error("id: f\nmax_steps: lots\n");
    assert!(e.starts_with("bad.yaml:2:12:"), "{e}");
    let e = one_error(
        "id: f\nactions:\n  a:\n    type: oauth_user_login\n    oauth_server: s\n    input: { use_prompt: \"maybe\" }\nsteps:\n  - { from: start, to: a }\n  - { from: a, to: stop }\n",
    );
    assert!(
        e.starts_with("bad.yaml:6:26: expected true or false"),
        "{e}"
    );
}

#[test]
fn oauth_actions_need_a_server_and_others_refuse_one() {
    let errs = errors(
        "id: f\nactions:\n  a: { type: oauth_server_login }\n  b: { type: extract_json, oauth_server: s }\nsteps:\n  - { from: start, to: a }\n  - { from: a, to: b }\n  - { from: b, to: stop }\n",
    );
    assert!(
        errs[0].contains(":3:14: `a` (oauth_server_login) needs `oauth_server`"),
        "{errs:#?}"
    );
    assert!(
        errs[1].contains(":4:42: `extract_json` actions do not take `oauth_server`"),
        "{errs:#?}"
    );
}

#[test]
fn an_unconfigured_server_is_a_warning_not_an_error() {
    let options = ParseOptions {
        known_servers: Some(BTreeSet::from(["other".to_owned()])),
        ..ParseOptions::default()
    };
    let parsed = parse_flow("f.yaml", FLOW_EXAMPLE, &options).unwrap();
    assert_eq!(parsed.warnings.len(), 1);
    assert!(
        parsed.warnings[0]
            .to_string()
            .starts_with("f.yaml:11:19: OAuth server `entra` is not configured")
    );
}

#[test]
fn invalid_schedules_are_reported() {
    let e = one_error("id: f\nschedule: \"every day\"\nsteps:\n  - { from: start, to: stop }\n");
    assert!(
        e.starts_with("bad.yaml:2:11: invalid schedule `every day`"),
        "{e}"
    );
    let ok = parse_flow(
        "f.yaml",
        "id: f\nschedule: \"*/2 * * * * *\"\nsteps:\n  - { from: start, to: stop }\n",
        &ParseOptions::default(),
    );
    assert_eq!(ok.unwrap().flow.schedule.as_deref(), Some("*/2 * * * * *"));
}

#[test]
fn invalid_expressions_are_reported() {
    let e = one_error(
        "id: f\nvariables:\n  s: {}\nsteps:\n  - { from: start, to: stop, when: \"s ==\" }\n",
    );
    assert!(e.starts_with("bad.yaml:5:36: invalid condition:"), "{e}");
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let errs = errors(
        "id: f\nactions:\n  a: { type: nope }\n  b: { type: http_connector, input: { urll: x } }\nsteps:\n  - { from: start, to: b }\n  - { from: b, to: zzz }\n",
    );
    assert!(errs.len() >= 3, "{errs:#?}");
}

/// A flow whose one step has `when: <condition>` (on line 5, the value at column 36).
fn flow_with_condition(condition: &str) -> String {
    format!(
        "id: f\nvariables:\n  x: {{}}\nsteps:\n  - {{ from: start, to: stop, when: \"{condition}\" }}\n"
    )
}

#[test]
fn a_condition_of_ten_thousand_terms_is_refused_with_its_place_and_the_limit() {
    let condition = vec!["x==1"; 10_000].join("||");
    let yaml = flow_with_condition(&condition);
    assert!(yaml.len() > 40_000 && yaml.len() < 70_000);
    let e = one_error(&yaml);
    assert_eq!(
        e,
        "bad.yaml:5:36: invalid condition: the condition is 59998 bytes long; at most 4096 bytes are allowed"
    );
}

#[test]
fn a_condition_of_a_hundred_thousand_terms_is_refused_with_its_place_and_the_limit() {
    let condition = vec!["x == 1"; 100_000].join(" || ");
    let e = one_error(&flow_with_condition(&condition));
    assert!(
        e.starts_with("bad.yaml:5:36: invalid condition: the condition is 999996 bytes long; at most 4096 bytes are allowed"),
        "{e}"
    );
}

#[test]
fn a_hundred_thousand_open_parentheses_are_refused_with_its_place_and_the_limit() {
    let e = one_error(&flow_with_condition(&"(".repeat(100_000)));
    assert_eq!(
        e,
        "bad.yaml:5:36: invalid condition: the condition is 100000 bytes long; at most 4096 bytes are allowed"
    );
}

#[test]
fn conditions_within_the_size_limit_are_bounded_in_nesting_and_operators() {
    let nested = format!("{}x{} == 1", "(".repeat(40), ")".repeat(40));
    assert_eq!(
        one_error(&flow_with_condition(&nested)),
        "bad.yaml:5:36: invalid condition: the condition nests brackets 40 levels deep; at most 32 levels are allowed"
    );
    let chained = vec!["x"; 300].join("+");
    let e = one_error(&flow_with_condition(&format!("{chained} > 0")));
    assert!(
        e.starts_with("bad.yaml:5:36: invalid condition: the condition has 300 operators")
            && e.ends_with("at most 256 are allowed"),
        "{e}"
    );
    // At the limits, a condition is accepted.
    let fine = format!(
        "{}x{} == 1 && {} > 0",
        "(".repeat(32),
        ")".repeat(32),
        vec!["x"; 200].join("+")
    );
    parse_flow(
        "ok.yaml",
        &flow_with_condition(&fine),
        &ParseOptions::default(),
    )
    .unwrap();
}

#[test]
fn a_jsonpath_written_in_the_flow_is_bounded_like_a_condition() {
    let deep = format!("$[?{}@.a{}]", "(".repeat(50), ")".repeat(50));
    let e = one_error(&format!(
        "id: f\nvariables:\n  v: {{}}\nactions:\n  read:\n    type: extract_json\n    input: {{ json: '{{}}', path: \"{deep}\" }}\n    output: {{ value: v }}\nsteps:\n  - {{ from: start, to: read }}\n  - {{ from: read, to: stop }}\n"
    ));
    assert_eq!(
        e,
        "bad.yaml:7:32: the JSONPath nests brackets 51 levels deep; at most 32 levels are allowed"
    );
}

#[test]
fn templates_are_bounded_in_size_and_placeholders() {
    let many = "{x}".repeat(300);
    let e = one_error(&format!(
        "id: f\nvariables:\n  x: {{}}\nactions:\n  call:\n    type: http_connector\n    input: {{ url: \"https://api.example/{many}\" }}\nsteps:\n  - {{ from: start, to: call }}\n  - {{ from: call, to: stop }}\n"
    ));
    assert_eq!(
        e,
        "bad.yaml:7:19: the template has 300 placeholders; at most 256 are allowed"
    );
    let big = format!("{{x}}{}", "a".repeat(70_000));
    let e = one_error(&format!(
        "id: f\nvariables:\n  x: {{}}\nactions:\n  call:\n    type: http_connector\n    input: {{ url: \"https://api.example/\", content: \"{big}\" }}\nsteps:\n  - {{ from: start, to: call }}\n  - {{ from: call, to: stop }}\n"
    ));
    assert!(
        e.ends_with("the template is 70003 bytes long; at most 65536 bytes are allowed"),
        "{e}"
    );
}

#[test]
fn flow_ids_are_at_most_128_characters_and_never_dot_or_dot_dot() {
    let flow = |id: &str| format!("id: \"{id}\"\nsteps:\n  - {{ from: start, to: stop }}\n");
    assert_eq!(
        one_error(&flow("..")),
        "bad.yaml:1:5: the flow id cannot be `..` (it names a directory, not a flow)"
    );
    assert_eq!(
        one_error(&flow(".")),
        "bad.yaml:1:5: the flow id cannot be `.` (it names a directory, not a flow)"
    );
    assert_eq!(
        one_error(&flow(&"f".repeat(129))),
        "bad.yaml:1:5: the flow id is 129 characters long; at most 128 are allowed"
    );
    parse_flow("ok.yaml", &flow(&"f".repeat(128)), &ParseOptions::default()).unwrap();
}

#[test]
fn max_steps_above_the_limit_is_refused_naming_the_limit() {
    let yaml = "id: f\nmax_steps: 4294967295\nsteps:\n  - { from: start, to: stop }\n";
    let e = one_error(yaml);
    assert_eq!(
        e,
        "bad.yaml:2:12: max_steps 4294967295 is above the limit of 10000 (the server's `max_steps_limit`)"
    );
    let at_limit = "id: f\nmax_steps: 10000\nsteps:\n  - { from: start, to: stop }\n";
    assert_eq!(
        parse_flow("f.yaml", at_limit, &ParseOptions::default())
            .unwrap()
            .flow
            .max_steps,
        10_000
    );
    let lower = ParseOptions {
        max_steps_limit: 50,
        ..ParseOptions::default()
    };
    let e = parse_flow("f.yaml", at_limit, &lower)
        .unwrap_err()
        .to_string();
    assert!(e.contains("above the limit of 50"), "{e}");
    let default = parse_flow(
        "f.yaml",
        "id: f\nsteps:\n  - { from: start, to: stop }\n",
        &lower,
    )
    .unwrap();
    assert_eq!(
        default.flow.max_steps, 50,
        "the default max_steps is lowered to the limit"
    );
}

/// docs/flows.md repeats the catalogue's inputs and outputs in its "Actions" table: every action
/// type has a row, and each row names exactly the catalogue's parameters.
#[test]
fn the_action_table_in_the_docs_matches_the_catalogue() {
    use tokenflow_core::flow::ActionKind;
    let doc = include_str!("../../../../docs/flows.md");
    let table = doc
        .split("## Actions")
        .nth(1)
        .expect("docs/flows.md has an Actions section");
    let names = |cell: &str| -> Vec<String> {
        cell.split(',')
            .filter_map(|part| part.split('`').nth(1))
            .map(str::to_owned)
            .collect()
    };
    let mut rows = std::collections::BTreeMap::new();
    for line in table.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 || !cells[1].starts_with('`') {
            continue;
        }
        for kind in names(cells[1]) {
            rows.insert(kind, (cells[2].to_owned(), cells[3].to_owned()));
        }
    }
    let user_login = rows.get("oauth_user_login").cloned();
    for kind in ActionKind::ALL {
        let spec = kind.spec();
        let (inputs, outputs) = rows
            .get(kind.as_str())
            .unwrap_or_else(|| panic!("docs/flows.md has no row for `{kind}`"))
            .clone();
        let expected_inputs: Vec<String> = spec.inputs.iter().map(|p| p.name.to_owned()).collect();
        let expected_outputs: Vec<String> =
            spec.outputs.iter().map(|p| p.name.to_owned()).collect();
        assert_eq!(names(&inputs), expected_inputs, "inputs of `{kind}`");
        let outputs = if outputs == "as `oauth_user_login`" {
            user_login.clone().expect("an oauth_user_login row").1
        } else {
            outputs
        };
        assert_eq!(names(&outputs), expected_outputs, "outputs of `{kind}`");
    }
}

fn auth_flow(auth: &str) -> String {
    format!(
        "id: f\nvariables:\n  pw: {{ secret: true }}\nactions:\n  call:\n    type: http_connector\n    input:\n      url: https://api.example/v1\n      auth: {auth}\nsteps:\n  - {{ from: start, to: call }}\n  - {{ from: call, to: stop }}\n"
    )
}

#[test]
fn auth_objects_are_checked_at_load_with_line_and_column() {
    assert_eq!(
        one_error(&auth_flow("{ oauth: svc }")),
        "bad.yaml:9:13: unknown auth kind `oauth` (known: oauth_server, vault, basic, api_key, bearer)"
    );
    assert_eq!(
        one_error(&auth_flow("{ basic: { username: app } }")),
        "bad.yaml:9:13: auth.basic.password is missing"
    );
    assert_eq!(
        one_error(&auth_flow("{ api_key: { value: { var: pw } } }")),
        "bad.yaml:9:13: auth.api_key needs `header` or `query` (where the key goes)"
    );
    assert_eq!(
        one_error(&auth_flow("{ bearer: { var: nobody } }")),
        "bad.yaml:9:13: unknown variable `nobody` (declare it under `variables`)"
    );
    assert_eq!(
        one_error(&auth_flow("\"{pw}\"")),
        "bad.yaml:9:13: auth must be an object with one of: oauth_server, vault, basic, api_key, bearer; got a string"
    );
    let parsed = parse_flow(
        "f.yaml",
        &auth_flow("{ basic: { username: app, password: \"{pw}\" } }"),
        &ParseOptions::default(),
    )
    .unwrap();
    let Binding::Object(auth) = &parsed.flow.actions["call"].inputs["auth"] else {
        panic!("an object binding");
    };
    let Binding::Object(basic) = &auth["basic"] else {
        panic!("an object binding");
    };
    assert_eq!(basic["username"], Binding::Const("app".into()));
    assert!(matches!(basic["password"], Binding::Template(_)));
    assert!(
        parse_flow(
            "f.yaml",
            &auth_flow("{ var: pw }"),
            &ParseOptions::default()
        )
        .is_ok(),
        "a variable holding the object is read at run time"
    );
}

#[test]
fn an_auth_oauth_server_that_is_not_configured_is_a_warning() {
    let options = ParseOptions {
        known_servers: Some(BTreeSet::from(["svc".to_owned()])),
        ..ParseOptions::default()
    };
    let parsed = parse_flow("f.yaml", &auth_flow("{ oauth_server: svc }"), &options).unwrap();
    assert!(parsed.warnings.is_empty());
    let parsed = parse_flow(
        "f.yaml",
        &auth_flow("{ oauth_server: ghost, scope: api }"),
        &options,
    )
    .unwrap();
    assert_eq!(
        parsed
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["f.yaml:9:13: OAuth server `ghost` is not configured; this action will end with -4"]
    );
}

/// docs/security.md, "Flow definitions and expressions": a flow file or `PUT` body is at most
/// 1 MiB, checked before the YAML parser sees it.
#[test]
fn a_flow_over_one_mib_is_refused_before_it_is_parsed() {
    let padding = format!("description: \"{}\"\n", "x".repeat(1024 * 1024));
    let error = one_error(&format!("id: big\n{padding}steps: []\n"));
    assert!(
        error.contains("the flow is larger than 1048576 bytes"),
        "{error}"
    );
}

/// Aliases that expand exponentially ("billion laughs") in a small document end with an error,
/// not with the parser's memory growing without bound: serde-saphyr's default budget (250,000
/// nodes) stops it.
#[test]
fn a_yaml_alias_bomb_is_refused_without_expanding_it() {
    let mut yaml = String::from(
        "id: bomb\nvariables:\n  a0: { default: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"] }\n",
    );
    for level in 1..12 {
        let previous = format!("*a{}", level - 1);
        let list = [previous.as_str(); 9].join(",");
        yaml.push_str(&format!("  a{level}: {{ default: &a{level} [{list}] }}\n"));
    }
    yaml.push_str("steps: []\n");
    assert!(yaml.len() < 4096);
    let error = one_error(&yaml);
    assert!(error.contains("budget breached"), "{error}");
}
