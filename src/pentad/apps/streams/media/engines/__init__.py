"""Ingest engines behind one interface (base.IngestEngine), chosen by PENTAD_STREAMS__ENGINE."""
