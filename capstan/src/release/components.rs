//! The components YAML of one package: what `clusterctl init` applies. One Namespace, the CRDs,
//! the manager's identity and least-privilege roles, its Deployment and a metrics Service.
//! Options are clusterctl variables with defaults (`${VAR:=default}`), as CAPV's are.

use serde_json::{Value, json};

use super::packages::Package;

/// Every provider of Capstan lives in this namespace (clusterctl wants exactly one Namespace
/// object per components file; it is the same one in each).
pub const NAMESPACE: &str = "capstan-system";

const HEALTH_PORT: u16 = 8081;
const METRICS_PORT: u16 = 8080;
/// The non-root user the image runs as (distroless's `nonroot`).
const USER_ID: i64 = 65532;

/// The objects, in the order they apply cleanly (namespace and CRDs first).
pub fn objects(package: &Package, image: &str) -> Vec<Value> {
    let labels = json!({"cluster.x-k8s.io/provider": package.label()});
    let mut objects = vec![json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": labels},
    })];
    objects.extend(
        package
            .crds
            .iter()
            .map(|crd| serde_json::to_value(crd).expect("CRDs serialise")),
    );
    objects.extend(identity(package, &labels));
    objects.push(deployment(package, image, &labels));
    objects.push(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": package.object_name("metrics"), "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }));
    objects
}

/// ServiceAccount, ClusterRole + binding for the controllers, Role + binding for leader election.
fn identity(package: &Package, labels: &Value) -> Vec<Value> {
    let account = package.object_name("manager");
    let subject = json!([{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]);
    let role_ref =
        |kind: &str, name: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name});
    let leader = package.object_name("leader-election");
    vec![
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": NAMESPACE, "labels": labels},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": account, "labels": labels},
            "rules": package.rules,
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": account, "labels": labels},
            "roleRef": role_ref("ClusterRole", &account),
            "subjects": subject,
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": leader, "namespace": NAMESPACE, "labels": labels},
            "rules": super::rbac::leader_election(),
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": leader, "namespace": NAMESPACE, "labels": labels},
            "roleRef": role_ref("Role", &leader),
            "subjects": subject,
        }),
    ]
}

/// The manager's command line: fixed flags, then the options as variables.
pub fn manager_args(package: &Package) -> Vec<String> {
    let mut args = vec![
        "manager".to_string(),
        format!("--provider={}", package.manager_provider),
        "--leader-elect".into(),
        format!("--leader-election-id={}", package.name),
        format!("--health-probe-bind-address=:{HEALTH_PORT}"),
        format!("--metrics-bind-address=:{METRICS_PORT}"),
    ];
    args.extend(
        package
            .options
            .iter()
            .map(|o| format!("{}=${{{}:={}}}", o.flag, o.variable, o.default)),
    );
    args
}

fn deployment(package: &Package, image: &str, labels: &Value) -> Value {
    let probe = |path: &str| json!({"httpGet": {"path": path, "port": "healthz"}, "periodSeconds": 10});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": package.object_name("controller-manager"), "namespace": NAMESPACE, "labels": labels},
        "spec": {
            // One active manager; a second waits on the lease during a rollout.
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": package.object_name("manager"),
                    "terminationGracePeriodSeconds": 15,
                    "securityContext": {
                        "runAsNonRoot": true, "runAsUser": USER_ID, "runAsGroup": USER_ID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "manager",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/capstan"],
                        "args": manager_args(package),
                        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                        "ports": [
                            {"name": "healthz", "containerPort": HEALTH_PORT, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
                        ],
                        "livenessProbe": probe("/healthz"),
                        "readinessProbe": probe("/readyz"),
                        "resources": {
                            "requests": {"cpu": "20m", "memory": "64Mi"},
                            "limits": {"memory": "512Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        // Scratch space (ISO images are assembled here) on a read-only root.
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    })
}
