"""The polyphonic benchmark corpora (Boulanger-Lewandowski et al. 2012): datasets and the benchmark."""
