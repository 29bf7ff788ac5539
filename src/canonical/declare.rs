//! Two declaration macros for canonical documents with long lists of coded answers (the 認定
//! documents hold ~200 fields, almost all optional codes): `code_list!` declares a code list as
//! an enum whose JSON form is the code as written (`"1"`, `"21"`, `"09B"`), so the JSON Schema
//! restricts a field to the list's codes and documents each code's meaning; `optional_record!`
//! declares a struct whose fields are all optional and left out of the JSON when absent. Types
//! only: nothing here reads a message.

/// Declares a code list: `code_list! { /// doc  pub enum Name { /// meaning  "1" => Variant, … } }`.
/// Each variant serializes as its code; the doc comment of a variant is its meaning, shown in the
/// JSON Schema beside the code.
macro_rules! code_list {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $code:literal => $variant:ident ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize, schemars::JsonSchema,
        )]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $code)] $variant ),+
        }

        impl $name {
            /// The code as written in the source file and the canonical JSON.
            pub fn code(self) -> &'static str {
                match self {
                    $( $name::$variant => $code ),+
                }
            }
        }
    };
}

/// Declares a record whose every field is optional: `optional_record! { /// doc  pub struct
/// Name { /// field doc  pub field: Type, … } }` makes each field an `Option<Type>` that is left
/// out of the JSON when absent, and the record itself `Default`.
macro_rules! optional_record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone, Debug, Default, PartialEq,
            serde::Serialize, serde::Deserialize, schemars::JsonSchema,
        )]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )+
        }
    };
}

pub(crate) use code_list;
pub(crate) use optional_record;

#[cfg(test)]
mod tests {
    code_list! {
        /// A test list.
        pub enum Demo {
            /// one
            "1" => One,
            /// twenty-one
            "21" => TwentyOne,
        }
    }

    optional_record! {
        /// A test record.
        pub struct Rec {
            /// a
            pub a: Demo,
            /// b
            pub b: i64,
        }
    }

    #[test]
    fn codes_are_written_as_codes_and_unknown_codes_are_refused() {
        assert_eq!(serde_json::to_string(&Demo::TwentyOne).unwrap(), "\"21\"");
        assert_eq!(Demo::One.code(), "1");
        let back: Demo = serde_json::from_str("\"21\"").unwrap();
        assert_eq!(back, Demo::TwentyOne);
        assert!(serde_json::from_str::<Demo>("\"2\"").is_err());
    }

    #[test]
    fn absent_fields_are_left_out_and_unknown_fields_refused() {
        let r = Rec {
            a: Some(Demo::One),
            b: None,
        };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"a":"1"}"#);
        assert!(serde_json::from_str::<Rec>(r#"{"c":1}"#).is_err());
        let schema = schemars::schema_for!(Demo).to_value();
        let text = schema.to_string();
        assert!(
            text.contains("\"21\"") && text.contains("twenty-one"),
            "{text}"
        );
    }
}
