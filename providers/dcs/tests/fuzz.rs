//! Issue 10 §3: whatever VRM (or something posing as it) answers is decoded without panicking:
//! VM, task and fault bodies, mutated for a bounded time (see `capstan_e2e::fuzz`).

use capstan_dcs::client::{ApiFault, Task, Vm};
use capstan_e2e::fuzz::fuzz;

const VM: &str = r#"{"urn":"urn:sites:S:vms:i-00000010","uri":"/service/sites/S/vms/i-00000010","uuid":"4a1f","name":"cp-1",
"status":"running","isTemplate":false,"externalUuid":"uid-1","cdRomStatus":"occupied","clusterUrn":"urn:sites:S:clusters:1",
"vmConfig":{"cpu":{"quantity":4},"memory":{"quantityMb":8192},"disks":[{"sequenceNum":1,"quantityGB":40}],
"nics":[{"ip":"10.0.0.21","ips6":[],"portGroupUrn":"urn:sites:S:dvswitchs:1:portgroups:2","mac":"28:6e:d4:00:00:01"}]},
"osOptions":{"osType":"Linux","osVersion":301,"hostname":"cp-1"},"createTime":"2024-01-01 00:00:00"}"#;
const TASK: &str = r#"{"urn":"urn:sites:S:tasks:1234","uri":"/service/sites/S/tasks/1234","type":"CloneVm","entityUrn":"urn:sites:S:vms:i-1",
"status":"failed","progress":100,"reason":"10300043","reasonDes":"The datastore is full."}"#;
const FAULT: &str = r#"{"errorCode":"10000040","errorDes":"The session has expired."}"#;

#[test]
fn vrm_answers_never_panic_the_decoder() {
    let report = fuzz(
        "VRM JSON answers",
        &[VM.as_bytes(), TASK.as_bytes(), FAULT.as_bytes()],
        &[
            b"null", b"[]", b"{}", b"\"", b"-1", b"1e999", b"\\u0000", b"true", b",", b":",
        ],
        |bytes| {
            if let Ok(vm) = serde_json::from_slice::<Vm>(bytes) {
                let _ = vm.state();
            }
            if let Ok(task) = serde_json::from_slice::<Task>(bytes) {
                let _ = task.status();
                let _ = task.failure_reason();
            }
            let _ = ApiFault::parse(bytes).to_string();
        },
    );
    assert!(report.executions > 100, "{report:?}");
}
