//! [`Value`]: what a placeholder binds and a column holds, the same on both engines.

/// A value bound to a `?` placeholder or read from a column.
///
/// PostgreSQL's column types map onto these: integers (and `numeric` without a fraction)
/// to `Integer`, floating point to `Real`, `boolean` to `Integer` 0/1 (as SQLite stores it),
/// text, `json`, `uuid`, dates and timestamps (RFC 3339, UTC) to `Text`, `bytea` to `Blob`.
/// A bound value is converted to the type PostgreSQL expects for its placeholder.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

macro_rules! value_from {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value { Value::$variant(v $(as $cast)?) }
        }
    )*};
}
value_from!(
    i64 => Integer, i32 => Integer as i64, u32 => Integer as i64, i16 => Integer as i64,
    f64 => Real, f32 => Real as f64, String => Text, Vec<u8> => Blob,
);

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Blob(v.to_vec())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Integer(v as i64)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::Integer(v as i64)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// Builds the parameter list for a query: `params![title, 20, None::<i64>]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::db::Value::from($value)),*] as &[$crate::db::Value]
    };
}

/// A column's value borrowed from the row it is read from: what
/// [`FromValue::from_value_ref`] converts without copying text or bytes into a [`Value`]
/// first. Text is valid UTF-8; SQLite text that is not reaches [`FromValue::from_value`]
/// instead, as a [`Value::Text`] with each invalid sequence replaced by U+FFFD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl From<ValueRef<'_>> for Value {
    fn from(value: ValueRef<'_>) -> Value {
        match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(s) => Value::Text(s.to_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(value: &'a Value) -> ValueRef<'a> {
        match value {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

impl ValueRef<'_> {
    /// The kind of the value, for decode errors: never the value itself, which may be
    /// private.
    fn kind(self) -> &'static str {
        match self {
            ValueRef::Null => "NULL",
            ValueRef::Integer(_) => "an integer",
            ValueRef::Real(_) => "a real number",
            ValueRef::Text(_) => "text",
            ValueRef::Blob(_) => "a blob",
        }
    }
}

/// Converts a column value into a Rust type.
///
/// Implement [`from_value`](FromValue::from_value) for a type of your own. SQLite's rows
/// are read through [`from_value_ref`](FromValue::from_value_ref), which by default makes
/// the owned [`Value`] and calls `from_value`; override it too when the type can be built
/// from the borrowed text or bytes directly, as `String` and `Vec<u8>` are (one copy
/// instead of two). PostgreSQL's rows call `from_value`: their values arrive owned.
///
/// ```
/// use burrow::db::{FromValue, Value, ValueRef};
///
/// /// A tag stored as text, kept in lower case.
/// struct Tag(String);
///
/// impl FromValue for Tag {
///     fn from_value(value: Value) -> Result<Tag, String> {
///         Tag::from_value_ref(ValueRef::from(&value))
///     }
///     fn from_value_ref(value: ValueRef<'_>) -> Result<Tag, String> {
///         match value {
///             ValueRef::Text(text) => Ok(Tag(text.to_lowercase())),
///             _ => Err("expected a tag".into()),
///         }
///     }
/// }
///
/// assert_eq!(Tag::from_value(Value::Text("Rust".into())).unwrap().0, "rust");
/// assert!(Tag::from_value(Value::Integer(1)).is_err());
/// ```
pub trait FromValue: Sized {
    /// Converts an owned value.
    fn from_value(value: Value) -> Result<Self, String>;

    /// Converts a value borrowed from a row.
    #[inline]
    fn from_value_ref(value: ValueRef<'_>) -> Result<Self, String> {
        Self::from_value(value.into())
    }
}

impl FromValue for Value {
    fn from_value(value: Value) -> Result<Self, String> {
        Ok(value)
    }
    #[inline]
    fn from_value_ref(value: ValueRef<'_>) -> Result<Self, String> {
        Ok(value.into())
    }
}

/// For types built from the borrowed value either way: the owned value is borrowed.
macro_rules! from_owned_by_ref {
    () => {
        fn from_value(value: Value) -> Result<Self, String> {
            Self::from_value_ref(ValueRef::from(&value))
        }
    };
}

impl FromValue for i64 {
    from_owned_by_ref!();
    #[inline]
    fn from_value_ref(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Integer(i) => Ok(i),
            other => Err(format!("expected an integer, found {}", other.kind())),
        }
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            from_owned_by_ref!();
            #[inline]
            fn from_value_ref(value: ValueRef<'_>) -> Result<Self, String> {
                <$t>::try_from(i64::from_value_ref(value)?).map_err(|e| e.to_string())
            }
        }
    )*};
}
from_integer!(i32, i16, u32, u64, usize);

impl FromValue for bool {
    from_owned_by_ref!();
    #[inline]
    fn from_value_ref(value: ValueRef<'_>) -> Result<Self, String> {
        Ok(i64::from_value_ref(value)? != 0)
    }
}
impl FromValue for f64 {
    from_owned_by_ref!();
    #[inline]
    fn from_value_ref(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Real(f) => Ok(f),
            ValueRef::Integer(i) => Ok(i as f64),
            other => Err(format!("expected a number, found {}", other.kind())),
        }
    }
}
impl FromValue for String {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s),
            other => Self::from_value_ref(ValueRef::from(&other)),
        }
    }
    #[inline]
    fn from_value_ref(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Text(s) => Ok(s.to_owned()),
            other => Err(format!("expected text, found {}", other.kind())),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Blob(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            other => Self::from_value_ref(ValueRef::from(&other)),
        }
    }
    #[inline]
    fn from_value_ref(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            ValueRef::Text(s) => Ok(s.as_bytes().to_vec()),
            other => Err(format!("expected a blob, found {}", other.kind())),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
    #[inline]
    fn from_value_ref(value: ValueRef<'_>) -> Result<Self, String> {
        match value {
            ValueRef::Null => Ok(None),
            other => T::from_value_ref(other).map(Some),
        }
    }
}

/// The current time in UTC as stored by Burrow's tables on both engines:
/// `2026-12-02T10:33:52Z` (RFC 3339, whole seconds), which sorts as text.
pub fn utc_now() -> String {
    utc_at(time::OffsetDateTime::now_utc())
}

/// `at` as [`utc_now`] writes it (e.g. an expiry: `utc_at(now + 15 minutes)`).
pub fn utc_at(at: time::OffsetDateTime) -> String {
    let now = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}
