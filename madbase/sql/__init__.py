"""Bootstrap and migration SQL, shipped as package data (`migrations/NNNN_name.sql`)."""
