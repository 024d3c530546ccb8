"""On-disk benchmark families (filled in by the restructure)."""
