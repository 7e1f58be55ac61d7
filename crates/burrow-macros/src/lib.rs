//! Burrow's derive macros. Use them through `burrow` (`burrow::db::FromRow`,
//! `burrow::forms::Form`, or `use burrow::prelude::*`), not from this crate: the code they
//! generate names `::burrow::…`, so the crate using them must depend on `burrow`.

mod files;
mod form;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Error, Field, Fields, LitStr, Token, parse_macro_input};

/// Derives `burrow::db::FromRow` for a struct: a query returns it row by row.
///
/// A struct with named fields reads each field from the column of the same name, converted
/// with `FromValue` (`i64`, `String`, `f64`, `bool`, `Vec<u8>`, `Option<T>` for a column
/// that may be NULL, …). A tuple struct reads its fields by position: the first column,
/// the second, …. A column that is missing or holds the wrong type fails with
/// `DbError::Decode`, which names the column.
///
/// Field attributes, `#[row(...)]`, several separated by commas:
///
/// - `rename = "column"`: read the column `column` instead of the field's name.
/// - `default`: `Default::default()` when the result has no such column (a query that
///   leaves it out); when it has one, the column is read as usual.
/// - `flatten`: the field is itself `FromRow` and reads its own columns from the same row.
/// - `skip`: never read; always `Default::default()`.
///
/// ```rust,ignore
/// use burrow::db::FromRow;
///
/// #[derive(FromRow)]
/// struct Author {
///     #[row(rename = "author_name")]
///     name: String,
/// }
///
/// #[derive(FromRow)]
/// struct Post {
///     id: i64,
///     title: String,
///     published_at: Option<String>, // NULL → None
///     #[row(default)]
///     comments: i64, // 0 when the query has no `comments` column
///     #[row(flatten)]
///     author: Author, // reads `author_name` from the same row
///     #[row(skip)]
///     selected: bool, // not a column: always false
/// }
///
/// #[derive(FromRow)]
/// struct PostId(i64); // the first column
///
/// let posts: Vec<Post> = db.read(|c| c.query(
///     "SELECT p.id, p.title, p.published_at, a.name AS author_name
///      FROM posts p JOIN authors a ON a.id = p.author_id", &[])).await?;
/// ```
///
/// Only structs: an enum or a union is a compile error, and so is an unknown
/// `#[row(...)]` key. Generic structs keep their generics and where-clause; no bounds are
/// added, so write the ones the fields need (`where T: FromValue`).
#[proc_macro_derive(FromRow, attributes(row))]
pub fn derive_from_row(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    from_row(&input).unwrap_or_else(Error::into_compile_error).into()
}

/// Derives `burrow::forms::Form` (and an empty `burrow::forms::Clean`) for a struct with
/// named fields: a form declared once, its rules in `#[form(...)]` on each field.
///
/// Field keys, several separated by commas: `required`, `max_length = N` and
/// `min_length = N` (characters), `min = N` and `max = N` (numbers), `email`, `url`,
/// `regex = "…"` (the whole value must match; checked at compile time), `choices = …` (a
/// `&'static [(&str, &str)]` of value and label, or a constant naming one), `custom = path`
/// (a `fn(&T) -> Result<(), Message>`, may repeat), `label = "…"` (default: the name,
/// capitalized, `_` as spaces), `help = "…"`, `widget = "…"` (`text`, `textarea`, `email`,
/// `url`, `number`, `checkbox`, `select`, `password`, `hidden`, `date`) and `no_trim`
/// (strings are trimmed unless it is given).
///
/// On the struct, `#[form(clean)]` leaves `Clean` to the app, for checks across fields.
/// The runtime and examples are in `burrow::forms`.
#[proc_macro_derive(Form, attributes(form))]
pub fn derive_form(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    form::derive(&input).unwrap_or_else(Error::into_compile_error).into()
}

/// The `impl ::burrow::db::FromRow` for `input`, or every error found in it.
fn from_row(input: &DeriveInput) -> syn::Result<TokenStream> {
    let ident = &input.ident;
    let fields = match &input.data {
        Data::Struct(data) => &data.fields,
        Data::Enum(data) => {
            let keyword = &data.enum_token;
            return Err(Error::new_spanned(
                quote!(#keyword #ident),
                "FromRow can only be derived for structs",
            ));
        }
        Data::Union(data) => {
            let keyword = &data.union_token;
            return Err(Error::new_spanned(
                quote!(#keyword #ident),
                "FromRow can only be derived for structs",
            ));
        }
    };

    let mut errors = Errors::default();
    errors.check(struct_attributes(&input.attrs));
    let row = quote!(row);
    let (body, reads_row) = match fields {
        Fields::Named(named) => {
            let mut reads_row = false;
            let inits: Vec<TokenStream> = named
                .named
                .iter()
                .filter_map(|field| {
                    let attrs = errors.check(FieldAttrs::parse(field))?;
                    reads_row |= !attrs.skip;
                    let name = field.ident.as_ref().expect("a named field");
                    let value = named_field(field, &attrs, &row);
                    Some(quote!(#name: #value))
                })
                .collect();
            (quote!(Self { #(#inits),* }), reads_row)
        }
        Fields::Unnamed(unnamed) => {
            let values: Vec<TokenStream> = unnamed
                .unnamed
                .iter()
                .enumerate()
                .map(|(index, field)| {
                    errors.check(tuple_field_attributes(field));
                    let ty = &field.ty;
                    let get_at = quote_spanned!(ty.span()=> ::burrow::db::Row::get_at::<#ty>);
                    quote!(#get_at(#row, #index)?)
                })
                .collect();
            let reads_row = !values.is_empty();
            (quote!(Self(#(#values),*)), reads_row)
        }
        Fields::Unit => (quote!(Self), false),
    };
    errors.finish()?;

    // A struct that reads no column would leave `row` unused.
    let param = if reads_row { row } else { quote!(_row) };
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics ::burrow::db::FromRow for #ident #ty_generics #where_clause {
            fn from_row(
                #param: &::burrow::db::Row<'_>,
            ) -> ::core::result::Result<Self, ::burrow::db::DbError> {
                ::core::result::Result::Ok(#body)
            }
        }
    })
}

/// The expression that reads one named field.
fn named_field(field: &Field, attrs: &FieldAttrs, row: &TokenStream) -> TokenStream {
    let ty = &field.ty;
    // Spanned on the field's type: "FromValue is not implemented" points at the field.
    let default = quote_spanned!(ty.span()=> <#ty as ::core::default::Default>::default());
    if attrs.skip {
        return default;
    }
    if attrs.flatten {
        return quote_spanned!(ty.span()=> <#ty as ::burrow::db::FromRow>::from_row(#row)?);
    }
    let column = match &attrs.rename {
        Some(column) => column.to_token_stream(),
        None => {
            let ident = field.ident.as_ref().expect("a named field");
            // `r#type` reads the column `type`.
            LitStr::new(&ident.unraw().to_string(), ident.span()).to_token_stream()
        }
    };
    let get = quote_spanned!(ty.span()=> ::burrow::db::Row::get::<#ty>);
    let read = quote!(#get(#row, #column)?);
    if attrs.default {
        quote! {
            if ::burrow::db::Row::contains(#row, #column) { #read } else { #default }
        }
    } else {
        read
    }
}

/// What `#[row(...)]` says about one named field.
#[derive(Default)]
struct FieldAttrs {
    rename: Option<LitStr>,
    default: bool,
    flatten: bool,
    skip: bool,
}

impl FieldAttrs {
    fn parse(field: &Field) -> syn::Result<FieldAttrs> {
        let mut attrs = FieldAttrs::default();
        // Where each key was written, for errors about combinations.
        let mut seen: Vec<(&'static str, Span)> = Vec::new();
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("row")) {
            attr.parse_nested_meta(|meta| {
                let key = key_of(&meta);
                let known = ["rename", "default", "flatten", "skip"];
                let Some(key) = known.into_iter().find(|k| *k == key) else {
                    return Err(meta.error(format!(
                        "unknown attribute `row({key})`: a field takes \
                         `rename = \"column\"`, `default`, `flatten` or `skip`"
                    )));
                };
                if seen.iter().any(|(k, _)| *k == key) {
                    return Err(meta.error(format!("`{key}` is given twice")));
                }
                seen.push((key, meta.path.span()));
                match key {
                    "rename" => {
                        let column: LitStr = meta.value()?.parse()?;
                        if column.value().is_empty() {
                            return Err(Error::new_spanned(column, "`rename` needs a column name"));
                        }
                        attrs.rename = Some(column);
                    }
                    "default" => attrs.default = flag(&meta, key)?,
                    "flatten" => attrs.flatten = flag(&meta, key)?,
                    _ => attrs.skip = flag(&meta, key)?,
                }
                Ok(())
            })?;
        }
        // `skip` and `flatten` read no column of the field's name, so the keys about that
        // column make no sense beside them.
        for (alone, why) in [
            ("skip", "a skipped field reads nothing"),
            ("flatten", "a flattened field reads its own columns"),
        ] {
            if seen.iter().any(|(k, _)| *k == alone)
                && let Some((other, span)) = seen.iter().find(|(k, _)| *k != alone)
            {
                return Err(Error::new(
                    *span,
                    format!("`{other}` cannot be combined with `{alone}`: {why}"),
                ));
            }
        }
        Ok(attrs)
    }
}

/// A key that takes no value (`default`, not `default = …`).
fn flag(meta: &ParseNestedMeta, key: &str) -> syn::Result<bool> {
    if meta.input.is_empty() || meta.input.peek(Token![,]) {
        Ok(true)
    } else {
        Err(meta.error(format!("`{key}` takes no value")))
    }
}

/// The key of one `#[row(...)]` entry as written (`rename`, `rename_all`, `a::b`).
fn key_of(meta: &ParseNestedMeta) -> String {
    meta.path.to_token_stream().to_string().replace(' ', "")
}

/// The struct itself takes no `#[row(...)]`: every key there is an error naming it.
fn struct_attributes(attrs: &[Attribute]) -> syn::Result<()> {
    for attr in attrs.iter().filter(|a| a.path().is_ident("row")) {
        attr.parse_nested_meta(|meta| {
            Err(meta.error(format!(
                "unknown attribute `row({})` on a struct: FromRow takes `#[row(...)]` on \
                 fields only",
                key_of(&meta)
            )))
        })?;
    }
    Ok(())
}

/// A tuple struct reads its columns by position: its fields take no `#[row(...)]`.
fn tuple_field_attributes(field: &Field) -> syn::Result<()> {
    match field.attrs.iter().find(|a| a.path().is_ident("row")) {
        Some(attr) => Err(Error::new_spanned(
            attr,
            "`#[row(...)]` goes on named fields: a tuple struct reads its columns by position",
        )),
        None => Ok(()),
    }
}

/// Errors collected across fields, so one build reports all of them.
#[derive(Default)]
struct Errors(Option<Error>);

impl Errors {
    fn check<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                match &mut self.0 {
                    Some(first) => first.combine(error),
                    None => self.0 = Some(error),
                }
                None
            }
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// What the derives' tests share: an expansion as text, or its errors.
#[cfg(test)]
fn expand_with(
    derive: fn(&DeriveInput) -> syn::Result<TokenStream>,
    input: DeriveInput,
) -> Result<String, Vec<String>> {
    derive(&input)
        .map(|tokens| tokens.to_string())
        .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
}

/// The errors of an expansion that must fail, one per line.
#[cfg(test)]
fn error_of(expanded: Result<String, Vec<String>>) -> String {
    match expanded {
        Ok(tokens) => panic!("expected an error, got {tokens}"),
        Err(errors) => errors.join("\n"),
    }
}

/// An app's folders, compiled into the binary: `migrations/`, `templates/` and `static/`
/// under `path` (relative to the crate's root), each only if it exists. Gives a
/// `burrow::AppFiles` for `App::files`; use it through `burrow::app_files!`.
///
/// A folder created after the last build is seen once the crate compiles again (any
/// edit to its Rust code; `cargo` does not watch for new folders).
#[proc_macro]
pub fn app_files(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let path = parse_macro_input!(input as LitStr);
    files::expand(&path).unwrap_or_else(Error::into_compile_error).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(input: DeriveInput) -> Result<String, Vec<String>> {
        expand_with(from_row, input)
    }

    fn error(input: DeriveInput) -> String {
        error_of(expand(input))
    }

    #[test]
    fn named_fields_read_their_columns() {
        let out = expand(syn::parse_quote! {
            struct Note {
                id: i64,
                #[row(rename = "body")]
                content: Option<String>,
                #[row(default)]
                hits: i64,
                #[row(flatten)]
                author: Author,
                #[row(skip)]
                selected: bool,
                r#type: String,
            }
        })
        .unwrap();
        let has = |s: &str| {
            let s: TokenStream = s.parse().unwrap();
            assert!(out.contains(&s.to_string()), "{s} not in {out}");
        };
        has("impl :: burrow :: db :: FromRow for Note");
        has("id : :: burrow :: db :: Row :: get :: < i64 > (row , \"id\") ?");
        has("content : :: burrow :: db :: Row :: get :: < Option < String > > (row , \"body\") ?");
        has("if :: burrow :: db :: Row :: contains (row , \"hits\")");
        has("author : < Author as :: burrow :: db :: FromRow > :: from_row (row) ?");
        has("selected : < bool as :: core :: default :: Default > :: default ()");
        has("r#type : :: burrow :: db :: Row :: get :: < String > (row , \"type\") ?");
    }

    #[test]
    fn tuple_structs_read_by_position_and_generics_pass_through() {
        let out = expand(syn::parse_quote! {
            struct Pair<T>(i64, T) where T: ::burrow::db::FromValue;
        })
        .unwrap();
        assert!(out.contains("impl < T > :: burrow :: db :: FromRow for Pair < T > where T"));
        assert!(out.contains("get_at :: < i64 > (row , 0usize) ?"));
        assert!(out.contains("get_at :: < T > (row , 1usize) ?"));
    }

    #[test]
    fn a_struct_that_reads_nothing_leaves_row_unused() {
        let out = expand(syn::parse_quote! { struct Unit; }).unwrap();
        assert!(out.contains("fn from_row (_row"));
        let out = expand(syn::parse_quote! { struct S { #[row(skip)] a: i64 } }).unwrap();
        assert!(out.contains("fn from_row (_row"));
    }

    #[test]
    fn only_structs() {
        let message = "FromRow can only be derived for structs";
        assert_eq!(error(syn::parse_quote! { enum E { A } }), message);
        assert_eq!(error(syn::parse_quote! { union U { a: u8 } }), message);
    }

    #[test]
    fn unknown_and_misused_attributes_are_errors() {
        let e = error(syn::parse_quote! { struct S { #[row(rename_all = "x")] a: i64 } });
        assert!(e.starts_with("unknown attribute `row(rename_all)`"), "{e}");
        let e = error(syn::parse_quote! { #[row(rename_all = "snake_case")] struct S { a: i64 } });
        assert!(e.starts_with("unknown attribute `row(rename_all)` on a struct"), "{e}");
        let e = error(syn::parse_quote! { struct S { #[row(default = 1)] a: i64 } });
        assert_eq!(e, "`default` takes no value");
        let e = error(syn::parse_quote! { struct S { #[row(rename = "")] a: i64 } });
        assert_eq!(e, "`rename` needs a column name");
        let e = error(syn::parse_quote! { struct S { #[row(skip)] #[row(skip)] a: i64 } });
        assert_eq!(e, "`skip` is given twice");
        let e = error(syn::parse_quote! { struct S { #[row(rename = "b", skip)] a: i64 } });
        assert_eq!(e, "`rename` cannot be combined with `skip`: a skipped field reads nothing");
        let e = error(syn::parse_quote! { struct S { #[row(flatten, default)] a: A } });
        assert_eq!(
            e,
            "`default` cannot be combined with `flatten`: a flattened field reads its own columns"
        );
        let e = error(syn::parse_quote! { struct S(#[row(skip)] i64); });
        assert!(e.starts_with("`#[row(...)]` goes on named fields"), "{e}");
        let e = error(syn::parse_quote! { struct S { #[row] a: i64 } });
        assert!(e.contains("expected attribute arguments in parentheses"), "{e}");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let errors = expand(syn::parse_quote! {
            struct S { #[row(nope)] a: i64, #[row(also_nope)] b: i64 }
        })
        .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[1].starts_with("unknown attribute `row(also_nope)`"));
    }
}
