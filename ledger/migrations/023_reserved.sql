-- Placeholder for migration 023, which another branch owns (issue 21 or
-- another issue). tern refuses a gap in the numbers; drop this file on merge.
SELECT 1;
