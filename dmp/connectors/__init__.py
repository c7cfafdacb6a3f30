"""External sources: reimbursement history, pharmacy dossier."""
