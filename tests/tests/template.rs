//! template.yaml and the workspace must agree: every Lambda binary has its function in the
//! template, and every function in the template builds a binary that exists. Its timeouts
//! must agree too: with the model's retry bounds, with API Gateway's limit, and with the
//! queues that trigger functions.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use celeriac_llm::BedrockSettings;

use serde_norway::Value;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// (package dir, binary) for every `functions/*/src/bin/*.rs`.
fn binaries() -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for app in std::fs::read_dir(repo().join("functions")).expect("functions/") {
        let app = app.expect("entry").path();
        let Ok(bins) = std::fs::read_dir(app.join("src/bin")) else {
            continue;
        };
        for bin in bins {
            let bin = bin.expect("entry").path();
            if bin.extension().is_some_and(|e| e == "rs") {
                let name = bin
                    .file_stem()
                    .expect("stem")
                    .to_string_lossy()
                    .into_owned();
                let dir = format!(
                    "functions/{}",
                    app.file_name().expect("name").to_string_lossy()
                );
                assert!(
                    found.insert(name.clone(), dir).is_none(),
                    "binary {name} defined twice"
                );
            }
        }
    }
    found
}

/// (binary, CodeUri) for every function the template builds with cargo-lambda.
fn template_functions() -> BTreeMap<String, String> {
    let template = template();
    let mut found = BTreeMap::new();
    for (id, resource) in functions(&template) {
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id} must be built by cargo-lambda"
        );
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no Metadata.BuildProperties.Binary"));
        let code_uri = resource["Properties"]["CodeUri"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no CodeUri"));
        assert!(
            found
                .insert(binary.to_owned(), code_uri.trim_end_matches('/').to_owned())
                .is_none(),
            "two functions build binary {binary}"
        );
    }
    found
}

#[test]
fn every_binary_has_its_function_and_every_function_its_binary() {
    let binaries = binaries();
    let functions = template_functions();
    assert!(!binaries.is_empty(), "no binaries found under functions/");
    for (bin, dir) in &binaries {
        let code_uri = functions.get(bin).unwrap_or_else(|| {
            panic!("binary {bin} ({dir}/src/bin/{bin}.rs) has no function in template.yaml")
        });
        assert_eq!(
            code_uri, dir,
            "function for {bin} must build from its package {dir}"
        );
    }
    for (bin, code_uri) in &functions {
        assert!(
            binaries.contains_key(bin),
            "template.yaml builds binary {bin} from {code_uri}, but {code_uri}/src/bin/{bin}.rs does not exist"
        );
    }
}

#[test]
fn every_event_sample_names_a_function() {
    let functions = template_functions();
    for entry in std::fs::read_dir(repo().join("events")).expect("events/") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            functions.contains_key(&name),
            "events/{name}/ is for a function that template.yaml does not declare"
        );
        for sample in std::fs::read_dir(entry.path()).expect("samples") {
            let sample = sample.expect("sample").path();
            let text = std::fs::read_to_string(&sample).expect("readable");
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", sample.display()));
        }
    }
}

/// The template's functions, by logical id.
fn functions(template: &Value) -> Vec<(&str, &Value)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(id, r)| (id.as_str().expect("logical id"), r))
        .collect()
}

fn template() -> Value {
    let text = std::fs::read_to_string(repo().join("template.yaml")).expect("template.yaml");
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

/// A function's timeout in seconds, its own or the Globals one.
fn timeout(template: &Value, function: &Value) -> u64 {
    function["Properties"]["Timeout"]
        .as_u64()
        .or_else(|| template["Globals"]["Function"]["Timeout"].as_u64())
        .expect("every function has a Timeout, its own or from Globals")
}

/// An environment variable as the function sees it: its own, else the Globals one.
fn env_var<'t>(template: &'t Value, function: &'t Value, key: &str) -> Option<&'t Value> {
    [
        &function["Properties"]["Environment"]["Variables"][key],
        &template["Globals"]["Function"]["Environment"]["Variables"][key],
    ]
    .into_iter()
    .find(|v| !v.is_null())
}

/// API Gateway's integration timeout for HTTP APIs: past it the client gets 503, whatever
/// the function goes on to do.
const API_GATEWAY_LIMIT: Duration = Duration::from_secs(29);
/// Room left for the rest of a request (session, cache, queue) after the slowest model call.
const REQUEST_HEADROOM: Duration = Duration::from_secs(3);

#[test]
fn model_calls_fit_in_their_function_and_behind_api_gateway_in_its_limit() {
    let template = template();
    let mut checked = 0;
    for (id, function) in functions(&template) {
        let policies = serde_norway::to_string(&function["Properties"]["Policies"]).expect("yaml");
        if !policies.contains("BedrockInvokePolicy") {
            continue;
        }
        checked += 1;
        // The same reading of the variables as the function's own start-up.
        let mut vars = HashMap::from([("LLM_PROVIDER".to_owned(), "bedrock".to_owned())]);
        for key in ["BEDROCK_ATTEMPT_TIMEOUT_MS", "BEDROCK_MAX_ATTEMPTS"] {
            if let Some(value) = env_var(&template, function, key) {
                let value = match value {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    other => panic!("{id}: {key} is {other:?}, expected a number"),
                };
                vars.insert(key.to_owned(), value);
            }
        }
        let config = celeriac_platform::Config::from_source(&vars, id)
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        let slowest = BedrockSettings::from_config(&config.llm)
            .expect("configured for Bedrock")
            .slowest_call();
        let function_timeout = Duration::from_secs(timeout(&template, function));
        assert!(
            slowest < function_timeout,
            "{id}: a model call can take {slowest:?}, but the function times out after \
             {function_timeout:?}; raise Timeout or set BEDROCK_ATTEMPT_TIMEOUT_MS / BEDROCK_MAX_ATTEMPTS"
        );
        let behind_api = function["Properties"]["Events"]
            .as_mapping()
            .is_some_and(|events| {
                events
                    .values()
                    .any(|e| e["Type"].as_str() == Some("HttpApi"))
            });
        if behind_api {
            assert!(
                slowest + REQUEST_HEADROOM <= API_GATEWAY_LIMIT,
                "{id} answers HTTP, but a model call can take {slowest:?}, leaving under \
                 {REQUEST_HEADROOM:?} of API Gateway's {API_GATEWAY_LIMIT:?}; set \
                 BEDROCK_ATTEMPT_TIMEOUT_MS / BEDROCK_MAX_ATTEMPTS on it"
            );
        }
    }
    assert!(
        checked > 0,
        "no function may call Bedrock: the check found nothing"
    );
}

#[test]
fn every_queue_outlasts_the_function_it_triggers() {
    // Lambda refuses an SQS event source whose queue hides a message for less time than
    // the function may run: `sam deploy` fails on it.
    let template = template();
    let resources = &template["Resources"];
    let mut checked = 0;
    for (id, function) in functions(&template) {
        let Some(events) = function["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values() {
            if event["Type"].as_str() != Some("SQS") {
                continue;
            }
            let queue_ref = serde_norway::to_string(&event["Properties"]["Queue"]).expect("yaml");
            let queue = queue_ref
                .split(|c: char| !c.is_ascii_alphanumeric())
                .find(|word| resources[*word]["Type"].as_str() == Some("AWS::SQS::Queue"))
                .unwrap_or_else(|| panic!("{id}: SQS event names no queue of this template"));
            let visibility = resources[queue]["Properties"]["VisibilityTimeout"]
                .as_u64()
                .unwrap_or(30);
            let timeout = timeout(&template, function);
            assert!(
                visibility >= timeout,
                "{queue} hides a message for {visibility} s, less than {id}'s timeout of {timeout} s"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no SQS-triggered function found");
}

/// (METHOD path, binary) for every HTTP API route of the template.
fn template_routes(template: &Value) -> BTreeMap<String, String> {
    let mut routes = BTreeMap::new();
    for (id, function) in functions(template) {
        let Some(events) = function["Properties"]["Events"].as_mapping() else {
            continue;
        };
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no binary"));
        for event in events.values() {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let method = event["Properties"]["Method"].as_str().expect("Method");
            let path = event["Properties"]["Path"].as_str().expect("Path");
            let route = format!("{} {path}", method.to_uppercase());
            assert!(
                routes.insert(route.clone(), binary.to_owned()).is_none(),
                "two functions serve {route}"
            );
        }
    }
    routes
}

#[test]
fn the_openapi_document_describes_exactly_the_deployed_routes() {
    let text = std::fs::read_to_string(repo().join("infra/celeriac/openapi.yaml"))
        .expect("infra/celeriac/openapi.yaml");
    let document: Value = serde_norway::from_str(&text).expect("the document is YAML");
    let mut documented = BTreeMap::new();
    for (path, item) in document["paths"].as_mapping().expect("paths") {
        let path = path.as_str().expect("path");
        for (method, operation) in item.as_mapping().expect("path item") {
            let method = method.as_str().expect("method").to_uppercase();
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(
                operation["responses"]
                    .as_mapping()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} documents no response"
            );
            documented.insert(format!("{method} {path}"), id.to_owned());
        }
    }
    // Same routes, and each operation named after the function that serves it.
    assert_eq!(documented, template_routes(&template()));
}
