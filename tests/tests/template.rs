//! template.yaml and the workspace must agree: every Lambda binary has its function in the
//! template, and every function in the template builds a binary that exists.

use std::collections::BTreeMap;
use std::path::Path;

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
    let text = std::fs::read_to_string(repo().join("template.yaml")).expect("template.yaml");
    let template: Value = serde_norway::from_str(&text).expect("template.yaml is YAML");
    let resources = template["Resources"].as_mapping().expect("Resources");
    let mut found = BTreeMap::new();
    for (id, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().expect("logical id");
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
