-- Reserved for another branch of issue 17 (branch a17privacy numbers its migration 024); delete at merge.
SELECT 1;
