//! `export.csv` and `export.json`: the list's whole selection (search, filters and order
//! as on the page, every page), every column of the table.
//!
//! The rows are written to an unlinked temporary file inside one read, as fast as the
//! database gives them, and the file is then streamed to the client: memory stays flat
//! whatever the table's size, and a slow client holds a file descriptor, not a database
//! connection.

use crate::i18n::Locale;
use std::fs::File;
use std::io::{BufWriter, Seek, Write};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};

use super::Site;
use super::query::{ListQuery, Selection};
use crate::admin::AdminRow;
use crate::contrib::auth::RequireStaff;
use crate::db::{Db, DbError, FromRow, Value};
use crate::error::{Error, Result};
use crate::extract::Path;

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Json,
}

pub(super) async fn csv(
    site: State<Site>,
    slug: Path<String>,
    user: RequireStaff,
    db: Db,
    uri: Uri,
    locale: Locale,
) -> Result<Response> {
    export(site, slug, user, db, uri, locale, Format::Csv).await
}

pub(super) async fn json(
    site: State<Site>,
    slug: Path<String>,
    user: RequireStaff,
    db: Db,
    uri: Uri,
    locale: Locale,
) -> Result<Response> {
    export(site, slug, user, db, uri, locale, Format::Json).await
}

async fn export(
    State(site): State<Site>,
    Path(slug): Path<String>,
    RequireStaff(user): RequireStaff,
    db: Db,
    uri: Uri,
    locale: Locale,
    format: Format,
) -> Result<Response> {
    let model = site.model(&slug)?.clone();
    if !model.permissions.export.allows(user.is_staff(), user.is_admin()) {
        let plural = locale.label(&model.plural);
        return Err(Error::forbidden(
            locale.t_args("admin-may-not-export", &[("plural", &plural)]),
        ));
    }
    let query = ListQuery::parse(&model, uri.query());
    let (file, length) = db
        .read(move |c| {
            let selection = Selection::of(&model, &query, c.engine());
            let sql = selection.rows_sql(&model, &query, false);
            let spool = spool_file().map_err(|e| DbError::Other(format!("export: {e}")))?;
            let mut out = BufWriter::with_capacity(64 * 1024, spool);
            let mut writer = Writer { format, out: &mut out, rows: 0, columns: Vec::new() };
            c.query_each(&sql, &selection.params, |row| {
                let row = AdminRow::from_row(row)?;
                if writer.rows == 0 {
                    writer.columns = row.columns.to_vec();
                }
                writer.row(&row.values).map_err(io_error)
            })?;
            writer.finish().map_err(io_error)?;
            let mut file = out.into_inner().map_err(|e| io_error(e.into_error()))?;
            let length = file.stream_position().map_err(io_error)?;
            file.rewind().map_err(io_error)?;
            Ok((file, length))
        })
        .await?;
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    let mut response = Body::new(crate::files::FileBody::new(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    // The slug is a URL segment (checked at start-up): safe in a quoted file name.
    let disposition = format!("attachment; filename=\"{slug}.{extension}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn io_error(e: std::io::Error) -> DbError {
    DbError::Other(format!("export: {e}"))
}

/// A file of our own in the temporary folder, already unlinked: it disappears with its
/// last descriptor, whatever happens to the request.
fn spool_file() -> std::io::Result<File> {
    let path = std::env::temp_dir().join(format!("burrow-export-{}", crate::random::hex(16)));
    let file = crate::files::create_new(&path, 0o600)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Writes rows as CSV or a JSON array of objects.
struct Writer<'a, W: Write> {
    format: Format,
    out: &'a mut W,
    rows: usize,
    columns: Vec<String>,
}

impl<W: Write> Writer<'_, W> {
    fn shown_columns(&self) -> impl Iterator<Item = (usize, &str)> {
        // Relations' labels ride along as `__label_…` columns: exports keep the stored ids.
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.starts_with("__label_"))
            .map(|(i, c)| (i, c.as_str()))
    }

    fn row(&mut self, values: &[Value]) -> std::io::Result<()> {
        match self.format {
            Format::Csv => {
                if self.rows == 0 {
                    let header: Vec<String> =
                        self.shown_columns().map(|(_, c)| csv_cell(&Value::from(c))).collect();
                    writeln!(self.out, "{}\r", header.join(","))?;
                }
                let cells: Vec<String> =
                    self.shown_columns().map(|(i, _)| csv_cell(&values[i])).collect();
                write!(self.out, "{}\r\n", cells.join(","))?;
            }
            Format::Json => {
                let mut object = serde_json::Map::new();
                for (i, column) in self.shown_columns() {
                    object.insert(column.to_string(), json_value(&values[i]));
                }
                self.out.write_all(if self.rows == 0 { b"[\n" } else { b",\n" })?;
                serde_json::to_writer(&mut *self.out, &object)?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        match self.format {
            Format::Csv => Ok(()),
            Format::Json if self.rows == 0 => self.out.write_all(b"[]\n"),
            Format::Json => self.out.write_all(b"\n]\n"),
        }
    }
}

/// A CSV cell (RFC 4180 quoting). Text a spreadsheet would run as a formula (starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`: OWASP's advice
/// against formula injection. Numbers stay numbers.
fn csv_cell(value: &Value) -> String {
    let text = match value {
        Value::Text(t) if t.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{t}"),
        other => crate::admin::value_text(other),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(n) => (*n).into(),
        Value::Real(x) => {
            serde_json::Number::from_f64(*x).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Text(t) => t.clone().into(),
        Value::Blob(b) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b).into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell(&Value::from("plain")), "plain");
        assert_eq!(csv_cell(&Value::from("a,b \"c\"\nd")), "\"a,b \"\"c\"\"\nd\"");
        assert_eq!(csv_cell(&Value::from("=HYPERLINK(\"x\")")), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell(&Value::from("+1")), "'+1");
        assert_eq!(csv_cell(&Value::from("@SUM(A1)")), "'@SUM(A1)");
        assert_eq!(csv_cell(&Value::Integer(-5)), "-5");
        assert_eq!(csv_cell(&Value::Null), "");
    }

    #[test]
    fn rows_are_csv_lines_or_a_json_array() {
        let columns = vec!["id".to_string(), "title".into(), "__label_user_id".into()];
        let rows = [
            vec![Value::Integer(1), Value::from("-x"), Value::from("ann")],
            vec![Value::Integer(2), Value::Null, Value::Null],
        ];
        let mut out = Vec::new();
        let mut writer =
            Writer { format: Format::Csv, out: &mut out, rows: 0, columns: columns.clone() };
        for row in &rows {
            writer.row(row).unwrap();
        }
        writer.finish().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "id,title\r\n1,'-x\r\n2,\r\n");
        let mut out = Vec::new();
        let mut writer = Writer { format: Format::Json, out: &mut out, rows: 0, columns };
        for row in &rows {
            writer.row(row).unwrap();
        }
        writer.finish().unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, serde_json::json!([{"id": 1, "title": "-x"}, {"id": 2, "title": null}]));
    }
}
