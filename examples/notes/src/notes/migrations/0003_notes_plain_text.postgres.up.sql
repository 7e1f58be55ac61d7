-- As 0003_notes_plain_text.sqlite.up.sql: search results mark matches with \x02 and \x03,
-- so stored text must not contain them (input is cleaned since this release).
UPDATE notes
SET title = replace(replace(title, chr(2), ''), chr(3), ''),
    content = replace(replace(content, chr(2), ''), chr(3), '')
WHERE strpos(title, chr(2)) > 0 OR strpos(title, chr(3)) > 0
   OR strpos(content, chr(2)) > 0 OR strpos(content, chr(3)) > 0;
