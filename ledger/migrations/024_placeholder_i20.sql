-- Placeholder so that tern's numbering has no gap on branch i20 (migration 026); dropped at merge.
SELECT 1;
