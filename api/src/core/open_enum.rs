//! Open enums for values Cluster API owns.
//!
//! A closed Rust enum on a field that upstream writes turns a newer release's new value (or a
//! hand-edited status) into a decoding error, and kube-runtime's watcher then stops the whole
//! kind for every controller of the process. An open enum keeps the known values typed and
//! carries anything else as [`Other`](MachinePhase::Other) with the string preserved, so the one
//! odd object is reported and everything else keeps reconciling.

/// Declares an enum whose variants serialize as their own names, plus `Other(String)`.
macro_rules! open_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this version of Capstan does not know, kept as written.
            Other(String),
        }

        impl $name {
            /// The values this version knows, in the order upstream lists them.
            pub const KNOWN: &'static [&'static str] = &[$(stringify!($variant)),+];

            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => stringify!($variant),)+
                    Self::Other(s) => s,
                }
            }

            /// True for a value this version does not know.
            pub fn is_unknown(&self) -> bool {
                matches!(self, Self::Other(_))
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $(stringify!($variant) => Self::$variant,)+
                    other => Self::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok(Self::from(s.as_ref()))
            }
        }

        /// The schema lists the known values: it is what Capstan's own copy of the kind (the
        /// standalone CRDs) accepts; upstream's CRDs bring their own list.
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "enum": Self::KNOWN})
            }
        }
    };
}

pub(crate) use open_enum;

#[cfg(test)]
mod tests {
    open_enum! {
        enum Colour { Red, Green }
    }

    #[test]
    fn known_values_are_typed_and_unknown_ones_survive_a_round_trip() {
        let c: Colour = serde_json::from_str("\"Green\"").unwrap();
        assert_eq!(c, Colour::Green);
        let odd: Colour = serde_json::from_str("\"Ultraviolet\"").unwrap();
        assert_eq!(odd, Colour::Other("Ultraviolet".into()));
        assert!(odd.is_unknown());
        assert_eq!(serde_json::to_string(&odd).unwrap(), "\"Ultraviolet\"");
        assert_eq!(serde_json::to_string(&Colour::Red).unwrap(), "\"Red\"");
    }
}
