-- Reserved: migration 027 of another branch merged at the same time (issue 20's
-- migration is 029). Delete this file when that branch's 027 is merged.
SELECT 1;
