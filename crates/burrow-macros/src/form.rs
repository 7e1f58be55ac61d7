//! `#[derive(Form)]`: a `static` describing the fields, and the code that reads them.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Error, Field, Fields, Ident, LitInt, LitStr};

use super::{Errors, flag, key_of};

/// The keys a field takes, for the error naming an unknown one.
const FIELD_KEYS: &str = "`required`, `max_length = N`, `min_length = N`, `min = N`, \
                          `max = N`, `email`, `url`, `regex = \"…\"`, `choices = …`, \
                          `custom = path`, `label = \"…\"`, `help = \"…\"`, \
                          `widget = \"…\"`, `no_trim`, \
                          `max_size = \"10MB\"` or `accept = \"image/png,…\"`";

/// The controls `widget = "…"` may name, and their `InputType` variants.
const WIDGETS: [(&str, &str); 11] = [
    ("text", "Text"),
    ("textarea", "Textarea"),
    ("email", "Email"),
    ("url", "Url"),
    ("number", "Number"),
    ("checkbox", "Checkbox"),
    ("select", "Select"),
    ("password", "Password"),
    ("hidden", "Hidden"),
    ("date", "Date"),
    ("file", "File"),
];

/// The `impl ::burrow::forms::Form` (and `Clean`, unless the struct asks to write its own)
/// for `input`, or every error found in it.
pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let ident = &input.ident;
    let only = "Form can only be derived for structs with named fields";
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => &named.named,
            _ => return Err(Error::new_spanned(ident, only)),
        },
        // Through `quote!`: the tokens are `Copy` only with syn features this crate lacks.
        Data::Enum(data) => {
            let keyword = &data.enum_token;
            return Err(Error::new_spanned(quote!(#keyword), only));
        }
        Data::Union(data) => {
            let keyword = &data.union_token;
            return Err(Error::new_spanned(quote!(#keyword), only));
        }
    };
    if let Some(param) = input.generics.params.first() {
        // The field descriptions are one `static`, which cannot depend on type parameters.
        return Err(Error::new_spanned(param, "Form cannot be derived for generic structs"));
    }

    let mut errors = Errors::default();
    let own_clean = errors.check(struct_attributes(&input.attrs)).unwrap_or(false);
    let parsed: Vec<(&Field, FieldAttrs)> = fields
        .iter()
        .filter_map(|field| Some((field, errors.check(FieldAttrs::parse(field))?)))
        .collect();
    errors.finish()?;

    // Locals of the generated code, unseen by the paths an attribute names.
    let local = |name: &str| Ident::new(name, Span::mixed_site());
    let (data, all, errs, value) =
        (local("data"), local("fields"), local("errors"), local("value"));
    let count = parsed.len();
    let specs = parsed.iter().map(|(field, attrs)| spec(field, attrs));
    let vars: Vec<Ident> =
        (0..count).map(|i| format_ident!("field_{}", i, span = Span::mixed_site())).collect();
    let names: Vec<&Ident> = parsed.iter().map(|(f, _)| f.ident.as_ref().expect("named")).collect();
    let reads = parsed.iter().enumerate().map(|(i, (field, attrs))| {
        let (var, ty, name) = (&vars[i], &field.ty, wire_name(field));
        let customs = attrs.custom.iter().map(|custom| {
            quote_spanned! {custom.span()=>
                if let ::core::option::Option::Some(#value) = &#var {
                    if let ::core::result::Result::Err(message) = (#custom)(#value) {
                        #errs.add(#name, message);
                    }
                }
            }
        });
        quote! {
            let #var = ::burrow::forms::read_field::<#ty>(#data, &#all[#i], &mut #errs);
            #(#customs)*
        }
    });
    let types: Vec<_> = parsed.iter().map(|(f, _)| &f.ty).collect();
    let clean = if own_clean {
        quote!()
    } else {
        quote! {
            #[automatically_derived]
            impl ::burrow::forms::Clean for #ident {}
        }
    };
    Ok(quote! {
        #[automatically_derived]
        impl ::burrow::forms::Form for #ident {
            // `min = 1` becomes `(1) as f64`, which is exact for any number written.
            #[allow(clippy::unnecessary_cast)]
            fn fields() -> &'static [::burrow::forms::Field] {
                static FIELDS: [::burrow::forms::Field; #count] = [#(#specs),*];
                &FIELDS
            }

            #[allow(unused_variables)]
            fn read_fields(
                #data: &::burrow::forms::FormData,
            ) -> ::core::result::Result<Self, ::burrow::forms::Errors> {
                let #all = <Self as ::burrow::forms::Form>::fields();
                let mut #errs = ::burrow::forms::Errors::new();
                #(#reads)*
                match (#(#vars,)*) {
                    (#(::core::option::Option::Some(#vars),)*) if #errs.is_empty() => {
                        ::core::result::Result::Ok(Self { #(#names: #vars),* })
                    }
                    _ => ::core::result::Result::Err(#errs),
                }
            }

            fn values(&self) -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![#(<#types as ::burrow::forms::FieldValue>::to_input(&self.#names)),*]
            }

            fn db_values(&self) -> ::std::vec::Vec<::burrow::db::Value> {
                ::std::vec![#(<#types as ::burrow::forms::FieldValue>::to_value(&self.#names)),*]
            }
        }
        #clean
    })
}

/// The field's name in the body: the Rust name without `r#`.
fn wire_name(field: &Field) -> LitStr {
    let ident = field.ident.as_ref().expect("a named field");
    LitStr::new(&ident.unraw().to_string(), ident.span())
}

/// `title_text` reads "Title text".
fn default_label(name: &str) -> String {
    let spaced = name.replace('_', " ");
    let mut chars = spaced.trim().chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The `Field` built in the `static`: a chain of `const` calls. Calls of rules that need a
/// kind of value take the field's type, spanned on the attribute, so "`TextValue` is not
/// implemented for `i64`" points at `max_length`.
fn spec(field: &Field, attrs: &FieldAttrs) -> TokenStream {
    let ty = &field.ty;
    let name = wire_name(field);
    let label = match &attrs.label {
        Some(label) => quote!(#label),
        None => {
            let label = LitStr::new(&default_label(&name.value()), name.span());
            quote!(#label)
        }
    };
    let mut out = quote_spanned!(ty.span()=> ::burrow::forms::Field::new::<#ty>(#name, #label));
    if attrs.required {
        out.extend(quote!(.required()));
    }
    if attrs.no_trim {
        out.extend(quote!(.no_trim()));
    }
    if let Some(help) = &attrs.help {
        out.extend(quote!(.help(#help)));
    }
    if let Some((n, span)) = &attrs.min_length {
        out.extend(quote_spanned!(*span=> .min_length::<#ty>(#n)));
    }
    if let Some((n, span)) = &attrs.max_length {
        out.extend(quote_spanned!(*span=> .max_length::<#ty>(#n)));
    }
    if let Some((n, span)) = &attrs.min {
        out.extend(quote_spanned!(*span=> .min::<#ty>((#n) as f64)));
    }
    if let Some((n, span)) = &attrs.max {
        out.extend(quote_spanned!(*span=> .max::<#ty>((#n) as f64)));
    }
    if let Some(span) = attrs.email {
        out.extend(quote_spanned!(span=> .email::<#ty>()));
    }
    if let Some(span) = attrs.url {
        out.extend(quote_spanned!(span=> .url::<#ty>()));
    }
    if let Some(pattern) = &attrs.regex {
        out.extend(quote_spanned! {pattern.span()=>
            .regex::<#ty>({
                static PATTERN: ::burrow::forms::Pattern = ::burrow::forms::Pattern::new(#pattern);
                &PATTERN
            })
        });
    }
    if let Some((bytes, span)) = &attrs.max_size {
        out.extend(quote_spanned!(*span=> .max_size::<#ty>(#bytes)));
    }
    if let Some((types, span)) = &attrs.accept {
        out.extend(quote_spanned!(*span=> .accept::<#ty>(#types)));
    }
    if let Some(choices) = &attrs.choices {
        out.extend(quote!(.choices(#choices)));
    }
    // Last: an explicit widget wins over the one `email`, `url` or `choices` imply.
    if let Some(widget) = &attrs.widget {
        let variant = Ident::new(widget, Span::call_site());
        out.extend(quote!(.widget(::burrow::forms::InputType::#variant)));
    }
    out
}

/// What `#[form(...)]` says about one field.
#[derive(Default)]
struct FieldAttrs {
    required: bool,
    no_trim: bool,
    email: Option<Span>,
    url: Option<Span>,
    min_length: Option<(LitInt, Span)>,
    max_length: Option<(LitInt, Span)>,
    min: Option<(TokenStream, Span)>,
    max: Option<(TokenStream, Span)>,
    regex: Option<LitStr>,
    choices: Option<TokenStream>,
    custom: Vec<TokenStream>,
    label: Option<LitStr>,
    help: Option<LitStr>,
    /// The `InputType` variant.
    widget: Option<&'static str>,
    /// Bytes, as a `u64` literal.
    max_size: Option<(TokenStream, Span)>,
    accept: Option<(LitStr, Span)>,
}

impl FieldAttrs {
    fn parse(field: &Field) -> syn::Result<FieldAttrs> {
        let mut attrs = FieldAttrs::default();
        let mut seen: Vec<String> = Vec::new();
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("form")) {
            attr.parse_nested_meta(|meta| {
                let key = key_of(&meta);
                let span = meta.path.span();
                // `custom` may be given once per rule function.
                if key != "custom" && seen.contains(&key) {
                    return Err(meta.error(format!("`{key}` is given twice")));
                }
                seen.push(key.clone());
                match key.as_str() {
                    "required" => attrs.required = flag(&meta, &key)?,
                    "no_trim" => attrs.no_trim = flag(&meta, &key)?,
                    "email" => attrs.email = flag(&meta, &key)?.then_some(span),
                    "url" => attrs.url = flag(&meta, &key)?.then_some(span),
                    "min_length" => attrs.min_length = Some((length(&meta)?, span)),
                    "max_length" => attrs.max_length = Some((length(&meta)?, span)),
                    "min" => attrs.min = Some((expression(&meta, &key)?, span)),
                    "max" => attrs.max = Some((expression(&meta, &key)?, span)),
                    "choices" => attrs.choices = Some(expression(&meta, &key)?),
                    "custom" => attrs.custom.push(expression(&meta, &key)?),
                    "label" => attrs.label = Some(text(&meta, &key)?),
                    "help" => attrs.help = Some(text(&meta, &key)?),
                    "max_size" => {
                        let text = text(&meta, &key)?;
                        let bytes = size(&text.value()).ok_or_else(|| {
                            Error::new_spanned(
                                &text,
                                "`max_size` takes a size such as \"500KB\", \"10MB\" or \"1GB\"",
                            )
                        })?;
                        let literal = syn::LitInt::new(&format!("{bytes}u64"), text.span());
                        attrs.max_size = Some((quote!(#literal), span));
                    }
                    "accept" => {
                        let types = text(&meta, &key)?;
                        let value = types.value();
                        let bad = value.split(',').map(str::trim).find(|t| {
                            let mut halves = t.split('/');
                            let (family, kind) = (halves.next(), halves.next());
                            !(family.is_some_and(|f| !f.is_empty() && f != "*")
                                && kind.is_some_and(|k| !k.is_empty())
                                && halves.next().is_none())
                        });
                        if let Some(bad) = bad {
                            return Err(Error::new_spanned(
                                &types,
                                format!(
                                    "`accept` takes MIME types such as \"image/png,image/*\"; \
                                     `{bad}` is not one"
                                ),
                            ));
                        }
                        attrs.accept = Some((types, span));
                    }
                    "regex" => {
                        let pattern = text(&meta, &key)?;
                        if let Err(e) = regex_syntax::Parser::new().parse(&pattern.value()) {
                            // regex-syntax shows the pattern, a caret, then `error: why`.
                            let text = e.to_string();
                            let why = text.lines().last().unwrap_or_default();
                            let why = why.trim().trim_start_matches("error: ");
                            return Err(Error::new_spanned(
                                pattern,
                                format!("`regex` is not a valid pattern: {why}"),
                            ));
                        }
                        attrs.regex = Some(pattern);
                    }
                    "widget" => {
                        let widget = text(&meta, &key)?;
                        let found = WIDGETS.iter().find(|(w, _)| *w == widget.value());
                        let Some((_, variant)) = found else {
                            let known: Vec<&str> = WIDGETS.iter().map(|(w, _)| *w).collect();
                            return Err(Error::new_spanned(
                                widget,
                                format!("unknown widget; one of: {}", known.join(", ")),
                            ));
                        };
                        attrs.widget = Some(variant);
                    }
                    _ => {
                        return Err(meta.error(format!(
                            "unknown attribute `form({key})`: a field takes {FIELD_KEYS}"
                        )));
                    }
                }
                Ok(())
            })?;
        }
        Ok(attrs)
    }
}

/// A string value: `label = "Title"`.
fn text(meta: &ParseNestedMeta, key: &str) -> syn::Result<LitStr> {
    let value = meta.value()?;
    value.parse::<LitStr>().map_err(|e| Error::new(e.span(), format!("`{key}` takes a string")))
}

/// A character count: `max_length = 200`.
fn length(meta: &ParseNestedMeta) -> syn::Result<LitInt> {
    let n: LitInt = meta.value()?.parse()?;
    n.base10_parse::<usize>()?;
    Ok(LitInt::new(&format!("{}usize", n.base10_digits()), n.span()))
}

/// `"10MB"` in bytes: a whole number with `B`, `KB`, `MB` or `GB` (powers of 1024, as
/// `--max-body-size` counts), or none (bytes).
fn size(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_uppercase();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(factor).filter(|n| *n > 0)
}

/// Any expression, up to the next comma: `min = -5`, `choices = &[("a", "A")]`,
/// `custom = path::to::check`. Taken as tokens: it is type-checked where it is used.
fn expression(meta: &ParseNestedMeta, key: &str) -> syn::Result<TokenStream> {
    let input = meta.value()?;
    let mut tokens = TokenStream::new();
    while !input.is_empty() && !input.peek(syn::Token![,]) {
        tokens.extend([input.parse::<TokenTree>()?]);
    }
    if tokens.is_empty() {
        return Err(meta.error(format!("`{key}` needs a value")));
    }
    Ok(tokens)
}

/// The struct takes `#[form(clean)]` alone: it implements `Clean` itself.
fn struct_attributes(attrs: &[Attribute]) -> syn::Result<bool> {
    let mut clean = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("form")) {
        attr.parse_nested_meta(|meta| {
            let key = key_of(&meta);
            if key == "clean" {
                clean = flag(&meta, &key)?;
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown attribute `form({key})` on a struct: it takes `clean` (the struct \
                     implements `burrow::forms::Clean` itself); rules go on fields"
                )))
            }
        })?;
    }
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(input: DeriveInput) -> Result<String, Vec<String>> {
        crate::expand_with(derive, input)
    }

    fn error(input: DeriveInput) -> String {
        crate::error_of(expand(input))
    }

    fn has(out: &str, expected: &str) {
        let expected: TokenStream = expected.parse().unwrap();
        assert!(out.contains(&expected.to_string()), "{expected} not in {out}");
    }

    #[test]
    fn fields_become_a_static_and_reads() {
        let out = expand(syn::parse_quote! {
            struct Note {
                #[form(required, max_length = 200, label = "Title", help = "Short")]
                title: String,
                #[form(max_length = 100_000, widget = "textarea", no_trim)]
                content: String,
                #[form(min = -1, max = 5, custom = check::positive, custom = odd)]
                r#count: i64,
                #[form(email, regex = "[a-z]+@x\\.org", choices = &[("a", "A")])]
                contact_email: Option<String>,
            }
        })
        .unwrap();
        has(&out, "impl :: burrow :: forms :: Form for Note");
        has(&out, "static FIELDS : [:: burrow :: forms :: Field ; 4usize]");
        has(
            &out,
            ":: burrow :: forms :: Field :: new :: < String > (\"title\" , \"Title\") \
             . required () . help (\"Short\") . max_length :: < String > (200usize)",
        );
        has(
            &out,
            ". no_trim () . max_length :: < String > (100000usize) \
             . widget (:: burrow :: forms :: InputType :: Textarea)",
        );
        has(&out, "new :: < i64 > (\"count\" , \"Count\") . min :: < i64 > ((- 1) as f64)");
        has(&out, "(\"contact_email\" , \"Contact email\") . email :: < Option < String > > ()");
        has(&out, ":: burrow :: forms :: Pattern :: new (\"[a-z]+@x\\\\.org\")");
        has(&out, ". choices (& [(\"a\" , \"A\")])");
        has(&out, "(check :: positive) (value)");
        has(&out, "(odd) (value)");
        has(
            &out,
            "Self { title : field_0 , content : field_1 , r#count : field_2 , \
             contact_email : field_3 }",
        );
        has(&out, "impl :: burrow :: forms :: Clean for Note { }");
    }

    #[test]
    fn clean_on_the_struct_leaves_clean_to_the_app() {
        let out = expand(syn::parse_quote! {
            #[form(clean)]
            struct S { a: String }
        })
        .unwrap();
        assert!(!out.contains("Clean for S"), "{out}");
    }

    #[test]
    fn only_plain_structs_with_named_fields() {
        let message = "Form can only be derived for structs with named fields";
        assert_eq!(error(syn::parse_quote! { enum E { A } }), message);
        assert_eq!(error(syn::parse_quote! { union U { a: u8 } }), message);
        assert_eq!(error(syn::parse_quote! { struct T(String); }), message);
        assert_eq!(
            error(syn::parse_quote! { struct G<T> { a: T } }),
            "Form cannot be derived for generic structs"
        );
    }

    #[test]
    fn unknown_and_misused_attributes_are_errors() {
        let e = error(syn::parse_quote! { struct S { #[form(maxlength = 3)] a: String } });
        assert!(e.starts_with("unknown attribute `form(maxlength)`: a field takes"), "{e}");
        let e = error(syn::parse_quote! { #[form(required)] struct S { a: String } });
        assert!(e.starts_with("unknown attribute `form(required)` on a struct"), "{e}");
        let e = error(syn::parse_quote! { struct S { #[form(required = true)] a: String } });
        assert_eq!(e, "`required` takes no value");
        let e = error(syn::parse_quote! { struct S { #[form(required, required)] a: String } });
        assert_eq!(e, "`required` is given twice");
        let e = error(syn::parse_quote! { struct S { #[form(label = 3)] a: String } });
        assert_eq!(e, "`label` takes a string");
        let e = error(syn::parse_quote! { struct S { #[form(max_length = -1)] a: String } });
        assert!(e.contains("invalid digit"), "{e}");
        let e = error(syn::parse_quote! { struct S { #[form(widget = "slider")] a: String } });
        assert!(e.starts_with("unknown widget; one of: text, textarea"), "{e}");
        let e = error(syn::parse_quote! { struct S { #[form(regex = "a(")] a: String } });
        assert_eq!(e, "`regex` is not a valid pattern: unclosed group");
        let e = error(syn::parse_quote! { struct S { #[form(min = )] a: i64 } });
        assert_eq!(e, "`min` needs a value");
    }

    #[test]
    fn file_rules_take_sizes_and_mime_types() {
        let out = expand(syn::parse_quote! {
            struct S {
                #[form(max_size = "5MB", accept = "image/png,image/*")]
                photo: UploadedFile,
            }
        })
        .unwrap();
        has(&out, ". max_size :: < UploadedFile > (5242880u64)");
        has(&out, ". accept :: < UploadedFile > (\"image/png,image/*\")");
        assert_eq!(size("512kb"), Some(512 * 1024));
        assert_eq!(size("10"), Some(10));
        assert_eq!(size("0MB"), None);
        let e = error(syn::parse_quote! { struct S { #[form(max_size = "big")] a: UploadedFile } });
        assert!(e.starts_with("`max_size` takes a size"), "{e}");
        let e = error(syn::parse_quote! { struct S { #[form(accept = "png")] a: UploadedFile } });
        assert!(e.contains("`png` is not one"), "{e}");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let errors = expand(syn::parse_quote! {
            struct S { #[form(nope)] a: String, #[form(also_nope)] b: String }
        })
        .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[1].starts_with("unknown attribute `form(also_nope)`"));
    }
}
