//! A small namespace-aware tree of a SOAP answer. vCenter and vcsim bind the same namespaces to
//! different prefixes (`xsi:type` on vCenter, `XMLSchema-instance:type` on vcsim 0.24,
//! `_XMLSchema-instance:type` on later vcsims), so every element and the `xsi:type` attribute are
//! kept as (namespace URI, local name) and looked up that way, never by prefix.

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

pub const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const VIM25: &str = "urn:vim25";
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
pub const XSD: &str = "http://www.w3.org/2001/XMLSchema";

/// The value of an `xsi:type` attribute, its prefix resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeName {
    pub ns: Option<String>,
    pub name: String,
}

/// One element of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    pub ns: Option<String>,
    pub name: String,
    pub xsi_type: Option<TypeName>,
    /// Attributes without a namespace (the `type` of a managed object reference).
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    /// The text directly inside this element.
    pub text: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed XML: {0}")]
pub struct XmlError(pub String);

fn err(e: impl std::fmt::Display) -> XmlError {
    XmlError(e.to_string())
}

impl Node {
    /// The first child named `name` in the vim25 namespace: every element of a vim25 payload is
    /// there (the answer's method element declares it as the default namespace).
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.child_ns(Some(VIM25), name)
    }

    /// All children named `name` in the vim25 namespace (an array property repeats its element).
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children
            .iter()
            .filter(move |c| c.ns.as_deref() == Some(VIM25) && c.name == name)
    }

    pub fn child_ns(&self, ns: Option<&str>, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.ns.as_deref() == ns && c.name == name)
    }

    /// The text of the child `name`, if there is such a child.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// Follows a dotted path of vim25 children (`config.hardware`).
    pub fn path(&self, path: &str) -> Option<&Node> {
        path.split('.').try_fold(self, |n, step| n.child(step))
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The local name of the `xsi:type`, which names the concrete vim25 type of a polymorphic value.
    pub fn type_name(&self) -> Option<&str> {
        self.xsi_type.as_ref().map(|t| t.name.as_str())
    }

    pub fn parse_bool(&self) -> Option<bool> {
        match self.text.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }

    pub fn parse_i64(&self) -> Option<i64> {
        self.text.trim().parse().ok()
    }
}

/// Parses a whole document into its root element.
pub fn parse(input: &str) -> Result<Node, XmlError> {
    let mut reader = NsReader::from_str(input);
    // A stack of open elements; the finished root ends up alone in `done`.
    let mut stack: Vec<Node> = Vec::new();
    let mut done: Option<Node> = None;
    loop {
        match reader.read_event().map_err(err)? {
            Event::Start(e) => stack.push(open(&reader, &e)?),
            Event::Empty(e) => {
                let node = open(&reader, &e)?;
                close(&mut stack, &mut done, node);
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(|| err("unbalanced end tag"))?;
                close(&mut stack, &mut done, node);
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content()),
            Event::CData(t) => push_text(&mut stack, &t.xml10_content()),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(err)? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| err(format!("unknown entity &{};", &*r)))?
                        .to_string(),
                };
                push_text(&mut stack, &resolved);
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(err("unclosed element"));
    }
    done.ok_or_else(|| err("no root element"))
}

fn push_text(stack: &mut [Node], text: &str) {
    // Text outside the root (whitespace) has nowhere to go and means nothing.
    if let Some(top) = stack.last_mut() {
        top.text.push_str(text);
    }
}

fn close(stack: &mut [Node], done: &mut Option<Node>, node: Node) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => *done = Some(node),
    }
}

fn bound(r: ResolveResult<'_>) -> Result<Option<String>, XmlError> {
    match r {
        ResolveResult::Bound(ns) => Ok(Some(ns.as_ref().to_string())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(p) => Err(err(format!("undeclared prefix {p:?}"))),
    }
}

fn open(reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<Node, XmlError> {
    let resolver = reader.resolver();
    let (ns, local) = resolver.resolve_element(e.name());
    let mut node = Node {
        ns: bound(ns)?,
        name: local.as_ref().to_string(),
        ..Node::default()
    };
    for a in e.attributes() {
        let a = a.map_err(err)?;
        if a.key.as_namespace_binding().is_some() {
            continue;
        }
        let value = a.normalized_value(XmlVersion::Implicit1_0).map_err(err)?.into_owned();
        let (ans, alocal) = resolver.resolve_attribute(a.key);
        let alocal = alocal.as_ref().to_string();
        match bound(ans)? {
            Some(uri) if uri == XSI && alocal == "type" => node.xsi_type = Some(type_name(reader, &value)?),
            Some(_) => {}
            None => node.attrs.push((alocal, value)),
        }
    }
    Ok(node)
}

/// Resolves the prefix of a QName-valued attribute (`xsd:string`) in the element's scope; an
/// unprefixed value takes the default namespace, as XML Schema says for QName values.
fn type_name(reader: &NsReader<&[u8]>, value: &str) -> Result<TypeName, XmlError> {
    let qname = quick_xml::name::QName(value);
    let ns = bound(reader.resolver().resolve_prefix(qname.prefix(), true))?;
    Ok(TypeName {
        ns,
        name: qname.local_name().as_ref().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_not_prefixes() {
        let doc = r#"<a:Envelope xmlns:a="http://schemas.xmlsoap.org/soap/envelope/"><a:Body>
            <R xmlns="urn:vim25"><val xmlns:q="http://www.w3.org/2001/XMLSchema-instance" xmlns:d="http://www.w3.org/2001/XMLSchema" q:type="d:string">x &amp; y&#33;</val>
            <obj type="VirtualMachine">vm-1</obj><other xmlns="urn:other">no</other></R></a:Body></a:Envelope>"#;
        let root = parse(doc).unwrap();
        assert_eq!((root.ns.as_deref(), root.name.as_str()), (Some(SOAP_ENV), "Envelope"));
        let r = &root.child_ns(Some(SOAP_ENV), "Body").unwrap().children[0];
        let val = r.child("val").unwrap();
        assert_eq!(val.text, "x & y!");
        assert_eq!(
            val.xsi_type,
            Some(TypeName {
                ns: Some(XSD.into()),
                name: "string".into()
            })
        );
        assert_eq!(r.child("obj").unwrap().attr("type"), Some("VirtualMachine"));
        assert!(r.child("other").is_none(), "same local name, other namespace");
    }

    #[test]
    fn broken_documents_are_errors() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("<p:a/>").is_err());
        assert!(parse("").is_err());
    }
}
