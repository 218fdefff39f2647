//! The bytes on the wire: request envelopes in WSDL element order (vcsim ignores order, so only
//! these tests pin it) and faults read whatever prefixes the server chose.

use super::soap::{Answer, parse_answer};
use super::tasks::{TaskInfo, TaskState};
use super::vm::{clone_request, reconfigure_request};
use super::xml;
use super::*;

const HEAD: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?>"#,
    r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/""#,
    r#" xmlns:xsd="http://www.w3.org/2001/XMLSchema""#,
    r#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>"#
);
const TAIL: &str = "</soapenv:Body></soapenv:Envelope>";

#[test]
fn clone_envelope_is_in_wsdl_order() {
    let spec = CloneSpec {
        location: RelocateSpec {
            folder: None,
            datastore: Some(MoRef::new("Datastore", "/tmp/govcsim-DC0-LocalDS_0@folder-5")),
            disk_move_type: Some(DiskMoveType::CreateNewChildDiskBacking),
            pool: Some(MoRef::new("ResourcePool", "resgroup-27")),
            host: Some(MoRef::new("HostSystem", "host-21")),
        },
        template: false,
        config: Some(ConfigSpec {
            instance_uuid: Some("11111111-2222-3333-4444-555555555555".into()),
            disk_uuid_enabled: Some(true),
            num_cpus: Some(4),
            memory_mb: Some(4096),
            device_change: vec![DeviceChange::AddVmxnet3 {
                key: -100,
                backing: NicBacking::DistributedPort {
                    switch_uuid: "fea9".into(),
                    portgroup_key: "dvportgroup-12".into(),
                },
                mac: None,
            }],
            extra_config: vec![OptionValue::new("guestinfo.userdata", "a<b&c")],
            vapp_config_removed: Some(true),
            ..ConfigSpec::default()
        }),
        power_on: false,
        snapshot: Some(MoRef::new("VirtualMachineSnapshot", "snapshot-1")),
    };
    let req = clone_request(
        &MoRef::new("VirtualMachine", "vm-62"),
        &MoRef::new("Folder", "group-3"),
        "capi-m1",
        &spec,
    );
    let expected = [
        HEAD,
        r#"<CloneVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-62</_this>"#,
        r#"<folder type="Folder">group-3</folder><name>capi-m1</name>"#,
        r#"<spec><location xsi:type="VirtualMachineRelocateSpec">"#,
        r#"<datastore type="Datastore">/tmp/govcsim-DC0-LocalDS_0@folder-5</datastore>"#,
        r#"<diskMoveType>createNewChildDiskBacking</diskMoveType>"#,
        r#"<pool type="ResourcePool">resgroup-27</pool><host type="HostSystem">host-21</host></location>"#,
        r#"<template>false</template>"#,
        r#"<config><instanceUuid>11111111-2222-3333-4444-555555555555</instanceUuid>"#,
        r#"<flags><diskUuidEnabled>true</diskUuidEnabled></flags><numCPUs>4</numCPUs><memoryMB>4096</memoryMB>"#,
        r#"<deviceChange xsi:type="VirtualDeviceConfigSpec"><operation>add</operation>"#,
        r#"<device xsi:type="VirtualVmxnet3"><key>-100</key>"#,
        r#"<backing xsi:type="VirtualEthernetCardDistributedVirtualPortBackingInfo">"#,
        r#"<port><switchUuid>fea9</switchUuid><portgroupKey>dvportgroup-12</portgroupKey></port></backing>"#,
        r#"<connectable><startConnected>true</startConnected><allowGuestControl>true</allowGuestControl>"#,
        r#"<connected>true</connected></connectable><addressType>generated</addressType></device></deviceChange>"#,
        r#"<extraConfig xsi:type="OptionValue"><key>guestinfo.userdata</key>"#,
        r#"<value xsi:type="xsd:string">a&lt;b&amp;c</value></extraConfig>"#,
        r#"<vAppConfigRemoved>true</vAppConfigRemoved></config>"#,
        r#"<powerOn>false</powerOn><snapshot type="VirtualMachineSnapshot">snapshot-1</snapshot></spec>"#,
        "</CloneVM_Task>",
        TAIL,
    ]
    .concat();
    assert_eq!(req.envelope(), expected);
}

/// A disk as vcsim 0.24 sends it (its own prefix for XML Schema instance).
const DISK: &str = r#"<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="VirtualMachine">vm-1</obj>
<propSet><name>config.hardware.device</name><val xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" XMLSchema-instance:type="ArrayOfVirtualDevice"><VirtualDevice XMLSchema-instance:type="VirtualDisk"><key>204</key><deviceInfo XMLSchema-instance:type="Description"><label>disk-202-0</label><summary>10,485,760 KB</summary></deviceInfo><backing XMLSchema-instance:type="VirtualDiskFlatVer2BackingInfo"><fileName>[LocalDS_0] vm/disk1.vmdk</fileName><datastore type="Datastore">datastore-59</datastore></backing><controllerKey>202</controllerKey><unitNumber>0</unitNumber><capacityInKB>10485760</capacityInKB><capacityInBytes>10737418240</capacityInBytes></VirtualDevice></val></propSet></objects></returnval></RetrievePropertiesExResponse>"#;

#[test]
fn reconfigure_envelope_resends_the_disk_whole() {
    let root = xml::parse(DISK).unwrap();
    let val = root.path("returnval.objects.propSet.val").unwrap();
    let disks = types::VirtualDevice::list_from_node(val);
    assert_eq!(disks.len(), 1);
    assert!(disks[0].is_disk());
    assert_eq!(disks[0].capacity_kb(), Some(10485760));
    assert_eq!(disks[0].file_name(), Some("[LocalDS_0] vm/disk1.vmdk"));
    let spec = ConfigSpec {
        num_cpus: Some(2),
        memory_mb: Some(2048),
        device_change: vec![disks[0].resized(20971520)],
        extra_config: vec![
            OptionValue::new("guestinfo.metadata", "e30K"),
            OptionValue::clear("guestinfo.userdata"),
        ],
        ..ConfigSpec::default()
    };
    let req = reconfigure_request(&MoRef::new("VirtualMachine", "vm-1"), &spec);
    let expected = [
        HEAD,
        r#"<ReconfigVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-1</_this>"#,
        r#"<spec><numCPUs>2</numCPUs><memoryMB>2048</memoryMB>"#,
        r#"<deviceChange xsi:type="VirtualDeviceConfigSpec"><operation>edit</operation>"#,
        r#"<device xsi:type="VirtualDisk"><key>204</key>"#,
        r#"<deviceInfo xsi:type="Description"><label>disk-202-0</label><summary>10,485,760 KB</summary></deviceInfo>"#,
        r#"<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[LocalDS_0] vm/disk1.vmdk</fileName>"#,
        r#"<datastore type="Datastore">datastore-59</datastore></backing>"#,
        r#"<controllerKey>202</controllerKey><unitNumber>0</unitNumber>"#,
        r#"<capacityInKB>20971520</capacityInKB><capacityInBytes>21474836480</capacityInBytes></device></deviceChange>"#,
        r#"<extraConfig xsi:type="OptionValue"><key>guestinfo.metadata</key><value xsi:type="xsd:string">e30K</value></extraConfig>"#,
        r#"<extraConfig xsi:type="OptionValue"><key>guestinfo.userdata</key><value xsi:type="xsd:string"></value></extraConfig>"#,
        "</spec></ReconfigVM_Task>",
        TAIL,
    ]
    .concat();
    assert_eq!(req.envelope(), expected);
}

fn fault_of(body: &str) -> Fault {
    match parse_answer(body).unwrap() {
        Answer::Fault(f) => f,
        Answer::Response(r) => panic!("not a fault: {r:?}"),
    }
}

#[test]
fn faults_are_read_by_namespace_not_prefix() {
    // As vcsim writes it: `soapenv:` and `xsi:` on the envelope.
    let vcsim = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>The object has already been deleted or has not been completely created</faultstring><detail><ManagedObjectNotFoundFault xmlns="urn:vim25" xsi:type="ManagedObjectNotFound"><obj type="VirtualMachine">vm-99</obj></ManagedObjectNotFoundFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
    assert_eq!(
        fault_of(vcsim),
        Fault::ManagedObjectNotFound {
            obj: Some(MoRef::new("VirtualMachine", "vm-99")),
            message: "The object has already been deleted or has not been completely created".into(),
        }
    );
    // Other prefixes everywhere, vim25 elements prefixed too, the type a prefixed QName.
    let other = r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><S:Fault><faultcode>ServerFaultCode</faultcode><faultstring>The name 'capi-m1' already exists.</faultstring><detail><v:DuplicateNameFault xmlns:v="urn:vim25" xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:type="v:DuplicateName"><v:name>capi-m1</v:name><v:object type="VirtualMachine">vm-7</v:object></v:DuplicateNameFault></detail></S:Fault></S:Body></S:Envelope>"#;
    assert_eq!(
        fault_of(other),
        Fault::DuplicateName {
            name: Some("capi-m1".into()),
            object: Some(MoRef::new("VirtualMachine", "vm-7")),
            message: "The name 'capi-m1' already exists.".into(),
        }
    );
    // A `type` attribute in a namespace that is not XML Schema instance is not the fault type:
    // the element name is.
    let decoy = r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><e:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Login failure</faultstring><detail><InvalidLoginFault xmlns="urn:vim25" xmlns:xsi="urn:not-xsi" xsi:type="NotAuthenticated"/></detail></e:Fault></e:Body></e:Envelope>"#;
    assert_eq!(
        fault_of(decoy),
        Fault::InvalidLogin {
            message: "Login failure".into()
        }
    );
    let other_type = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>A specified parameter was not correct: spec.location.pool</faultstring><detail><InvalidArgumentFault xmlns="urn:vim25" xsi:type="InvalidArgument"><invalidProperty>spec.location.pool</invalidProperty></InvalidArgumentFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
    let f = fault_of(other_type);
    assert_eq!(f.fault_type(), "InvalidArgument");
    assert!(f.to_string().contains("invalid property spec.location.pool"), "{f}");
}

#[test]
fn http_answers_map_to_errors() {
    use super::soap::into_result;
    let fault = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>busy</faultstring><detail><TaskInProgressFault xmlns="urn:vim25" xsi:type="TaskInProgress"/></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
    let e = into_result("PowerOnVM_Task", 500, fault).unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.status(), Some(500));
    let e = into_result("PowerOnVM_Task", 503, "<html>busy</html>").unwrap_err();
    assert!(matches!(e, VsphereError::Http { status: 503, .. }) && e.is_retryable());
    let e = into_result("PowerOnVM_Task", 500, "<html>oops</html>").unwrap_err();
    assert!(matches!(e, VsphereError::Http { status: 500, .. }));
    let e = into_result("PowerOnVM_Task", 200, "not xml <").unwrap_err();
    assert!(matches!(e, VsphereError::Decode { .. }) && !e.is_retryable());
}

#[test]
fn task_errors_carry_their_localized_fault() {
    let info = r#"<val xmlns="urn:vim25" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="TaskInfo"><key>task-9</key><task type="Task">task-9</task><descriptionId>VirtualMachine.powerOn</descriptionId><entity type="VirtualMachine">vm-62</entity><state>error</state><cancelled>false</cancelled><cancelable>false</cancelable><error><fault xsi:type="InvalidPowerState"><requestedState>poweredOn</requestedState><existingState>poweredOn</existingState></fault><localizedMessage>The attempted operation cannot be performed in the current state (Powered on).</localizedMessage></error></val>"#;
    let task = MoRef::new("Task", "task-9");
    let info = TaskInfo::from_node(&task, &xml::parse(info).unwrap()).unwrap();
    assert_eq!(info.state, TaskState::Error);
    assert_eq!(info.entity, Some(MoRef::new("VirtualMachine", "vm-62")));
    assert_eq!(
        info.error,
        Some(Fault::InvalidPowerState {
            requested: Some("poweredOn".into()),
            existing: Some("poweredOn".into()),
            message: "The attempted operation cannot be performed in the current state (Powered on).".into(),
        })
    );
    let done = r#"<val xmlns="urn:vim25" xmlns:q="http://www.w3.org/2001/XMLSchema-instance"><state>success</state><result q:type="ManagedObjectReference" type="VirtualMachine">vm-70</result></val>"#;
    let info = TaskInfo::from_node(&task, &xml::parse(done).unwrap()).unwrap();
    assert_eq!(info.result_moref(), Some(MoRef::new("VirtualMachine", "vm-70")));
    assert!(info.is_done() && info.error.is_none());
}
