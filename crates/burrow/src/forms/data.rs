//! [`FormData`]: the submitted fields as text, whatever the body's encoding.
//!
//! Only `application/x-www-form-urlencoded` bodies (and query strings) are read today.
//! This is the seam for multipart: a multipart reader would fill the same pairs with its
//! text parts, and forms would not change.

use crate::error::Error;

/// Submitted `name=value` pairs, in order; a name may repeat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormData {
    pairs: Vec<(String, String)>,
}

impl FormData {
    pub fn new(pairs: Vec<(String, String)>) -> FormData {
        FormData { pairs }
    }

    /// Parses `a=1&b=two` (a urlencoded body or a query string); a 400 if it is not one.
    pub fn from_urlencoded(bytes: &[u8]) -> Result<FormData, Error> {
        serde_urlencoded::from_bytes(bytes)
            .map(FormData::new)
            .map_err(|_| Error::bad_request("The form data could not be read."))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.pairs.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for FormData {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> FormData {
        FormData::new(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}
