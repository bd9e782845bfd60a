-- Placeholder so that 024 applies on this branch (issue 21a); the lead drops it at merge.
SELECT 1;
