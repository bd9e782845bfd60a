-- Placeholder on branch i24 only: migration 029 belongs to another branch
-- (tern needs the numbers without a gap). Drop this file at merge.
SELECT 1;
