//! Notes in the admin (`/admin/notes/`): every author's notes for staff, searched with the
//! notes' full-text index, filtered by author and date, exported; edited with the same
//! form (and rules) as the notes pages, plus the author (a select of the users).

use burrow::admin::Change;
use burrow::admin::{AdminSite, Filter, ModelAdmin};
use burrow::db::{Value, params, utc_now};

use super::store::{Author, NoteForm, SEARCH, changed, changed_notes};

pub(super) fn register(site: &mut AdminSite) {
    site.register(
        ModelAdmin::new("notes")
            .names("note", "notes")
            .form::<NoteForm>()
            .list(&["title", "user_id", "created_at", "updated_at"])
            .label_column("title")
            // Newest first, by the key: a sort by an unindexed column reads the whole table.
            .ordering("-id")
            .sortable(&["id", "title", "created_at", "updated_at"])
            .search(&["title", "content"])
            .search_index(SEARCH)
            .relation("user_id", "Author", "users", "username")
            .filter(Filter::relation("user_id"))
            .filter(Filter::date_range("created_at", "Created"))
            .edit_relation("user_id")
            .created_by("user_id")
            .readonly(&["created_at", "updated_at"])
            // Authors' open list pages update live: those who lose a note here…
            .before_change(|c, change| {
                match change {
                    Change::Edit(id, _) => changed_notes(c, &[id])?,
                    Change::Delete(ids) => changed_notes(c, ids)?,
                    Change::Create(_) => {}
                }
                Ok(Ok(()))
            })
            .after_change(|c, change| {
                match change {
                    Change::Edit(id, _) => {
                        c.execute(
                            "UPDATE notes SET updated_at = ? WHERE id = ?",
                            params![utc_now(), id],
                        )?;
                        // …and those who get one.
                        changed_notes(c, &[id])?;
                    }
                    Change::Create(values) => {
                        let author = values.iter().find(|(column, _)| *column == "user_id");
                        if let Some((_, Value::Integer(user_id))) = author {
                            changed(c, Author(*user_id))?;
                        }
                    }
                    Change::Delete(_) => {}
                }
                Ok(())
            }),
    );
}
