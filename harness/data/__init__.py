"""Frame indexes, video decoding, the frame store and the batch loader."""
