-- Placeholder for migration 018, which another branch of issue 16 owns.
-- tern refuses a gap in the numbers; drop this file when that branch's 018
-- is merged.
SELECT 1;
