//! Reading properties through the `PropertyCollector`: `RetrievePropertiesEx`, then
//! `ContinueRetrievePropertiesEx` while the answer carries a `token` (vCenter pages large
//! results; vcsim since 0.2x honours `maxObjects` too).

use std::collections::BTreeSet;

use super::error::Fault;
use super::soap::{self, Request};
use super::types::MoRef;
use super::xml::Node;
use super::{VsphereClient, VsphereError};

/// The properties read of one object. Unset optional properties are absent (vCenter leaves
/// them out of `propSet`); unreadable ones are in `missing` with their fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectContent {
    pub obj: MoRef,
    pub props: Vec<(String, Node)>,
    pub missing: Vec<(String, Fault)>,
}

impl ObjectContent {
    /// The value (`val`) of a property path as it was asked for (`runtime.powerState`).
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.props.iter().find(|(p, _)| p == path).map(|(_, v)| v)
    }

    pub fn text(&self, path: &str) -> Option<&str> {
        self.get(path).map(|v| v.text.as_str())
    }

    fn from_node(n: &Node) -> Option<ObjectContent> {
        let props = n
            .children("propSet")
            .filter_map(|p| Some((p.child_text("name")?.to_string(), p.child("val")?.clone())))
            .collect();
        let missing = n
            .children("missingSet")
            .filter_map(|m| {
                let lmf = m.child("fault")?;
                let message = lmf.child_text("localizedMessage").unwrap_or_default().to_string();
                Some((
                    m.child_text("path")?.to_string(),
                    Fault::from_node(lmf.child("fault")?, message),
                ))
            })
            .collect();
        Some(ObjectContent {
            obj: MoRef::from_node(n.child("obj")?)?,
            props,
            missing,
        })
    }
}

/// Writes a `PropertyFilterSpec` for `paths` of every object in `objs`: one `PropertySpec` per
/// object type (the collector matches a spec to an object by type), then the objects.
fn filter_spec(req: &mut Request, objs: &[MoRef], paths: &[&str]) {
    let kinds: BTreeSet<&str> = objs.iter().map(|o| o.kind.as_str()).collect();
    let x = req.body();
    x.open("specSet");
    for kind in kinds {
        x.open("propSet").text("type", kind);
        for p in paths {
            x.text("pathSet", p);
        }
        x.close("propSet");
    }
    for o in objs {
        x.open("objectSet").moref("obj", o).close("objectSet");
    }
    x.close("specSet");
}

/// Whether a `RetrieveResult` says the session is gone: vcsim answers a collector call without
/// a session with every property in `missingSet` as `NotAuthenticated` (vCenter faults).
fn unauthenticated(resp: &Node) -> bool {
    soap::returnval(resp).is_some_and(|rv| {
        rv.children("objects")
            .flat_map(|o| o.children("missingSet"))
            .filter_map(|m| m.path("fault.fault"))
            .any(|f| f.type_name() == Some("NotAuthenticated"))
    })
}

/// One page of a `RetrieveResult`: its objects and the token for the next page.
fn read_page(resp: &Node, out: &mut Vec<ObjectContent>) -> Option<String> {
    let rv = soap::returnval(resp)?;
    out.extend(rv.children("objects").filter_map(ObjectContent::from_node));
    rv.child_text("token").map(str::to_string)
}

impl VsphereClient {
    /// Named properties of one object (`runtime.powerState`, `config.extraConfig`, ...). A
    /// deleted object is a `ManagedObjectNotFound` fault.
    pub async fn retrieve_properties(&self, obj: &MoRef, paths: &[&str]) -> Result<ObjectContent, VsphereError> {
        let mut all = self.retrieve_objects(std::slice::from_ref(obj), paths, None).await?;
        Ok(match all.iter().position(|o| &o.obj == obj) {
            Some(i) => all.swap_remove(i),
            // Nothing set of what was asked: vCenter may leave the object out altogether.
            None => ObjectContent {
                obj: obj.clone(),
                props: Vec::new(),
                missing: Vec::new(),
            },
        })
    }

    /// Named properties of many objects, following continuation tokens to the end.
    /// `max_objects` bounds each page (`RetrieveOptions.maxObjects`).
    pub async fn retrieve_objects(
        &self,
        objs: &[MoRef],
        paths: &[&str],
        max_objects: Option<i32>,
    ) -> Result<Vec<ObjectContent>, VsphereError> {
        let pc = self.service_content().await?.property_collector.clone();
        let mut req = Request::new("RetrievePropertiesEx", &pc);
        filter_spec(&mut req, objs, paths);
        // `options` is not optional in the WSDL, even when it says nothing.
        req.body()
            .open("options")
            .opt_text("maxObjects", max_objects)
            .close("options");
        let mut out = Vec::new();
        let mut token = read_page(&self.invoke_checked(req, unauthenticated).await?, &mut out);
        while let Some(t) = token {
            let mut req = Request::new("ContinueRetrievePropertiesEx", &pc);
            req.body().text("token", &t);
            token = read_page(&self.invoke_checked(req, unauthenticated).await?, &mut out);
        }
        Ok(out)
    }
}
