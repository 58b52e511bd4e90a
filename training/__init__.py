"""Training: synthetic-data pipeline and the three training stages. Imports m2penc, never nodes."""
