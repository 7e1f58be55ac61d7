-- The language of a user's mails (a tag of --i18n-languages, e.g. `de`): the request's at
-- registration, then the one picked with the switcher while signed in or at sign-in.
-- '' is the site's default language.
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT '';
