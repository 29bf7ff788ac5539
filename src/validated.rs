//! Validated string newtypes in one line: `validated_string!(doc, Name, check, Error)` declares a
//! `Name(String)` that can only be built through `check`, with `parse`, `as_str`, `Display`,
//! `FromStr`, serde as a plain string (validated on the way in) and a JSON Schema of a plain string.
//! `check` returns the part of the text that is carried (the whole text, or a normalised part of it,
//! such as the 6 digits of a `00`-padded 保険者番号), or why the text is refused. Used by
//! [`crate::identifiers`] and the consent and calendar types; holds no rule itself.

/// Declares a validated string newtype; see the module documentation.
macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $check:path, $error:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `text` and wraps what it carries; the error says what is wrong with it.
            pub fn parse(text: &str) -> Result<Self, $error> {
                $check(text).map(|carried| Self(carried.to_owned()))
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $error;
            fn from_str(text: &str) -> Result<Self, $error> {
                Self::parse(text)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(text: String) -> Result<Self, $error> {
                let carried = $check(&text)?;
                if carried.len() == text.len() {
                    Ok(Self(text))
                } else {
                    Ok(Self(carried.to_owned()))
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                String::json_schema(generator)
            }
        }
    };
}

pub(crate) use validated_string;
