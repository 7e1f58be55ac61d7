-- The language a user's mails and jobs are in (a tag of --i18n-languages, e.g. `de`):
-- set at registration from the request, updated at each sign-in and when a signed-in
-- user picks a language with the switcher. '' is the site's default language.
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT '';
