//! A value read from a TOML file with its byte range: `toml::Spanned`, made
//! describable by JSON Schema. The file types derive `schemars::JsonSchema`
//! so `vlsp schema` follows them; `toml::Spanned` is foreign and has no
//! schema, so this wrapper stands in for it with the schema of the value.
//! A new field of type `Spanned<T>` needs no schema attribute.

use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `T` and where it stood in the file (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Spanned<T>(toml::Spanned<T>);

impl<T> Spanned<T> {
    pub fn new(span: Range<usize>, value: T) -> Self {
        Self(toml::Spanned::new(span, value))
    }

    /// Byte range of the value in the file.
    pub fn span(&self) -> Range<usize> {
        self.0.span()
    }

    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }

    pub fn get_ref(&self) -> &T {
        self.0.get_ref()
    }

    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }
}

impl<T> AsRef<T> for Spanned<T> {
    fn as_ref(&self) -> &T {
        self.0.get_ref()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        toml::Spanned::<T>::deserialize(d).map(Self)
    }
}

impl<T: Serialize> Serialize for Spanned<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.get_ref().serialize(s)
    }
}

/// The schema of the value: the span is not in the file.
impl<T: schemars::JsonSchema> schemars::JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, schemars::JsonSchema)]
    struct Doc {
        /// A number.
        n: Spanned<u64>,
        s: Option<Spanned<String>>,
    }

    #[test]
    fn keeps_the_span_and_has_the_values_schema() {
        let d: Doc = toml::from_str("n = 42\ns = \"x\"\n").unwrap();
        assert_eq!((*d.n.get_ref(), d.n.span()), (42, 4..6));
        assert_eq!(d.s.unwrap().into_inner(), "x");
        let s = serde_json::to_value(schemars::schema_for!(Doc)).unwrap();
        assert_eq!(s["properties"]["n"]["type"], "integer", "{s}");
        assert_eq!(s["properties"]["n"]["description"], "A number.", "{s}");
        assert_eq!(s["required"], serde_json::json!(["n"]), "{s}");
    }
}
