"""What a run leaves for its reader: results and comparison tables with paired statistics, missing results,
teacher diagnostics, regret tables, sweep figures, reports merged across run directories, and the pandas
frames for notebooks. It reads run directories and the artifact store; it may import :mod:`harness.runs` and
the rooms below it, and trains nothing.
"""
