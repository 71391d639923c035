"""The bar chart of a report (--plot FILE.png): one panel per table, log
scale; needs matplotlib."""


def plot(rep, path):
    """Draw rep (a report.Report) into the PNG file path."""
    from libchan.bench.report import CODEC_OPS

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = [t.key for t in rep.transports]
    panels = [("oneway", "One way, us per message", peers + ["pickle"]),
              ("roundtrip", "Blocking round trip, us", peers),
              ("local", "Codec, one thread, us per call", CODEC_OPS)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(15, 13))
    xs = range(len(rep.labels))
    for ax, (table, title, cols) in zip(axes, panels):
        w = 0.84 / len(cols)
        for j, col in enumerate(cols):
            hs, pos, miss = [], [], []
            for i, (k, _) in enumerate(rep.labels):
                v = rep.med_us(table, k, col)
                x = i - 0.42 + w * (j + 0.5)
                if v is None:
                    miss.append(x)
                else:
                    hs.append(v)
                    pos.append(x)
            bars = ax.bar(pos, hs, w, label=col,
                          edgecolor="black" if col == "libchan" else None,
                          linewidth=1.2 if col == "libchan" else 0)
            for x in miss:
                ax.text(x, 0.02, "n/a", rotation=90, fontsize=6,
                        ha="center", va="bottom",
                        transform=ax.get_xaxis_transform(), color="gray")
            del bars
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi * 30)         # room for the legend
        ax.set_title(title + " (log scale, lower is better)")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([lab for _, lab in rep.labels], fontsize=8)
        ax.grid(axis="y", which="major", alpha=0.3)
        ax.legend(fontsize=7, ncol=len(cols), loc="upper left")
    fig.suptitle("libchan %s vs peers: Python %s, %s CPUs, %s" % (
        rep.meta["libchan_version"], rep.meta["python"],
        rep.meta["cpu_count"], rep.meta["date"]))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
