-- Placeholder in branch i21 so that its migration 030 applies: migrations
-- 027..029 belong to other branches; drop this file at merge.
SELECT 1;
