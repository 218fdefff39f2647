//! The SOAP envelope: writing a request body in WSDL element order, and reading the answer's
//! `returnval` or its fault.
//!
//! vim25 types are XSD sequences, so children must come in the order of the WSDL (govmomi's
//! generated structs list fields in that order). vcsim's Go decoder ignores order, so a test
//! against vcsim cannot catch an ordering bug: the unit tests pin the bytes instead.

use std::fmt::Write as _;

use quick_xml::escape::escape;

use super::error::{Fault, VsphereError};
use super::types::MoRef;
use super::xml::{self, Node, SOAP_ENV, VIM25};

/// A request body under construction. Every text node and attribute is escaped: managed object
/// ids can hold `/`, `@`, `[` and spaces (vcsim datastore ids are paths), names anything.
#[derive(Debug, Default)]
pub struct Xml {
    buf: String,
}

impl Xml {
    pub fn open(&mut self, name: &str) -> &mut Self {
        let _ = write!(self.buf, "<{name}>");
        self
    }

    /// Opens an element of a polymorphic field: vim25 needs the concrete type in `xsi:type`.
    pub fn open_typed(&mut self, name: &str, xsi_type: &str) -> &mut Self {
        let _ = write!(self.buf, "<{name} xsi:type=\"{}\">", escape(xsi_type));
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        let _ = write!(self.buf, "</{name}>");
        self
    }

    pub fn text(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        let value = value.to_string();
        let _ = write!(self.buf, "<{name}>{}</{name}>", escape(value.as_str()));
        self
    }

    pub fn opt_text(&mut self, name: &str, value: Option<impl std::fmt::Display>) -> &mut Self {
        if let Some(v) = value {
            self.text(name, v);
        }
        self
    }

    /// A text element that says its XSD type, as `OptionValue.value` (declared `anyType`) must.
    pub fn typed_text(&mut self, name: &str, xsi_type: &str, value: &str) -> &mut Self {
        let _ = write!(
            self.buf,
            "<{name} xsi:type=\"{}\">{}</{name}>",
            escape(xsi_type),
            escape(value)
        );
        self
    }

    /// A managed object reference: `<name type="T">value</name>`.
    pub fn moref(&mut self, name: &str, r: &MoRef) -> &mut Self {
        let _ = write!(
            self.buf,
            "<{name} type=\"{}\">{}</{name}>",
            escape(r.kind.as_str()),
            escape(r.value.as_str())
        );
        self
    }

    pub fn opt_moref(&mut self, name: &str, r: Option<&MoRef>) -> &mut Self {
        if let Some(r) = r {
            self.moref(name, r);
        }
        self
    }

    /// Writes an element read from the server back, as the server sent it (children keep their
    /// order, polymorphic values their `xsi:type`), under the name `name`.
    pub fn node(&mut self, name: &str, n: &Node) -> &mut Self {
        let _ = write!(self.buf, "<{name}");
        if let Some(t) = &n.xsi_type {
            // The request binds `xsd` to XML Schema and makes vim25 the default namespace.
            let prefix = if t.ns.as_deref() == Some(xml::XSD) { "xsd:" } else { "" };
            let _ = write!(self.buf, " xsi:type=\"{prefix}{}\"", escape(t.name.as_str()));
        }
        for (k, v) in &n.attrs {
            let _ = write!(self.buf, " {k}=\"{}\"", escape(v.as_str()));
        }
        self.buf.push('>');
        if n.children.is_empty() {
            self.buf.push_str(&escape(n.text.as_str()));
        }
        for c in &n.children {
            self.node(&c.name, c);
        }
        self.close(name)
    }

    pub fn into_string(self) -> String {
        self.buf
    }
}

/// One vim25 method call: its name (also the operation reported to the observer) and body.
pub struct Request {
    pub method: &'static str,
    body: Xml,
}

impl Request {
    /// Starts `<method xmlns="urn:vim25"><_this type=…>…</_this>`: every vim25 method's first
    /// parameter is the object it is invoked on.
    pub fn new(method: &'static str, this: &MoRef) -> Self {
        let mut body = Xml::default();
        let _ = write!(body.buf, "<{method} xmlns=\"{VIM25}\">");
        body.moref("_this", this);
        Request { method, body }
    }

    pub fn body(&mut self) -> &mut Xml {
        &mut self.body
    }

    /// The whole envelope. No `soapenv:Header`: the session travels in the cookie, and govmomi
    /// also sends a header only when it has something to put in it.
    pub fn envelope(self) -> String {
        let mut out = String::with_capacity(self.body.buf.len() + 300);
        out.push_str(concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/""#,
            r#" xmlns:xsd="http://www.w3.org/2001/XMLSchema""#,
            r#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
            "<soapenv:Body>"
        ));
        out.push_str(&self.body.buf);
        let _ = write!(out, "</{}></soapenv:Body></soapenv:Envelope>", self.method);
        out
    }
}

/// What one answer said: the method's response element, or a fault.
#[derive(Debug)]
pub enum Answer {
    Response(Node),
    Fault(Fault),
}

/// Reads an answer body (HTTP 200, or 500 with a SOAP fault).
pub fn parse_answer(body: &str) -> Result<Answer, xml::XmlError> {
    let root = xml::parse(body)?;
    let payload = (root.ns.as_deref() == Some(SOAP_ENV) && root.name == "Envelope")
        .then(|| root.child_ns(Some(SOAP_ENV), "Body"))
        .flatten()
        .and_then(|b| b.children.first())
        .ok_or_else(|| xml::XmlError("not a SOAP envelope with a body".into()))?;
    if payload.ns.as_deref() == Some(SOAP_ENV) && payload.name == "Fault" {
        return Ok(Answer::Fault(parse_soap_fault(payload)));
    }
    Ok(Answer::Response(payload.clone()))
}

/// A `soapenv:Fault`. `faultcode`, `faultstring` and `detail` are unqualified (SOAP 1.1); the
/// vim25 fault is the one child of `detail`, its type in `xsi:type` (the element is named
/// `<Type>Fault`, which is the fallback).
fn parse_soap_fault(f: &Node) -> Fault {
    let message = f
        .child_ns(None, "faultstring")
        .map(|n| n.text.clone())
        .unwrap_or_default();
    let detail = f.child_ns(None, "detail").and_then(|d| d.children.first());
    match detail {
        Some(d) => Fault::from_node(d, message),
        None => Fault::Other {
            fault_type: f
                .child_ns(None, "faultcode")
                .map(|n| n.text.clone())
                .unwrap_or_else(|| "SOAP fault".into()),
            message,
            invalid_property: None,
        },
    }
}

/// The `returnval` of a response, if it has one (vim25 leaves it out for "nothing found").
pub fn returnval(response: &Node) -> Option<&Node> {
    response.child("returnval")
}

/// Maps an answer to the method's response element or its typed error.
pub fn into_result(method: &'static str, status: u16, body: &str) -> Result<Node, VsphereError> {
    // govmomi parses only 200 and 500 answers; anything else (a proxy's 502, a 404 page) is
    // not SOAP.
    if status != 200 && status != 500 {
        return Err(VsphereError::Http { method, status });
    }
    match (status, parse_answer(body)) {
        (_, Ok(Answer::Fault(fault))) => Err(VsphereError::Fault {
            method,
            fault: Box::new(fault),
        }),
        (200, Ok(Answer::Response(n))) => Ok(n),
        (200, Err(e)) => Err(VsphereError::Decode {
            method,
            message: e.to_string(),
        }),
        // A 500 without a SOAP fault in it: a server error all the same.
        _ => Err(VsphereError::Http { method, status }),
    }
}
