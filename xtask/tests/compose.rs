//! `docker-compose.yml` cannot be run here (no Docker engine), so its shape is checked instead:
//! it parses, names every service of the stack, and wires them the way the README says.

use serde_yaml::Value;
use std::collections::BTreeSet;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose file");
    serde_yaml::from_str(&text).expect("docker-compose.yml is valid YAML")
}

fn env_names(service: &Value) -> BTreeSet<String> {
    service["environment"]
        .as_mapping()
        .expect("environment is a mapping")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn compose_names_every_service_of_the_stack() {
    let doc = compose();
    let services: BTreeSet<&str> = doc["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        BTreeSet::from(["mailpit", "postgres", "redis", "server", "worker"])
    );
}

#[test]
fn server_and_worker_are_built_here_and_wait_for_their_stores() {
    let doc = compose();
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.matches("FROM ").count() >= 2,
        "the Dockerfile is multi-stage"
    );
    for (name, binary) in [("server", "convos-server"), ("worker", "convos-worker")] {
        let service = &doc["services"][name];
        assert_eq!(
            service["build"]["dockerfile"].as_str(),
            Some("Dockerfile"),
            "{name}"
        );
        assert_eq!(
            service["command"][0].as_str(),
            Some(binary),
            "{name} runs {binary}"
        );
        assert!(
            dockerfile.contains(&format!("-p {binary}")),
            "the image builds {binary}"
        );
        assert!(
            dockerfile.contains(&format!("/usr/local/bin/{binary}")),
            "the image ships {binary}"
        );
        let env = env_names(service);
        assert!(
            env.contains("DATABASE_URL") && env.contains("REDIS_URL"),
            "{name}: {env:?}"
        );
        for store in ["postgres", "redis"] {
            assert_eq!(
                service["depends_on"][store]["condition"].as_str(),
                Some("service_healthy"),
                "{name} waits for {store}"
            );
        }
    }
    let server = &doc["services"]["server"];
    let env = env_names(server);
    for setting in ["CONVOS_ADDR", "CONVOS_ENV", "CONVOS_SECRET_KEY"] {
        assert!(env.contains(setting), "server sets {setting}");
    }
    assert_eq!(
        server["environment"]["CONVOS_ENV"].as_str(),
        Some("production")
    );
    assert!(
        server["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p.as_str() == Some("8080:8080")),
        "the API is published on 8080"
    );
}

#[test]
fn every_service_has_an_image_or_a_build() {
    let doc = compose();
    for (name, service) in doc["services"].as_mapping().unwrap() {
        let has = service.get("image").is_some() || service.get("build").is_some();
        assert!(has, "{name:?} has neither image nor build");
    }
}
