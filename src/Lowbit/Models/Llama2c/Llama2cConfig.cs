namespace Lowbit.Models.Llama2c;

/// <summary>
/// The seven int32 header fields of a llama2.c checkpoint (run.c's <c>Config</c>), with the sign of
/// vocab_size turned into <see cref="SharedClassifier"/>: the file stores it negative when the
/// classifier is a separate matrix at the end instead of the token embedding table.
/// </summary>
public sealed record Llama2cConfig(
    int Dim,
    int HiddenDim,
    int NumLayers,
    int NumHeads,
    int NumKvHeads,
    int VocabSize,
    int SeqLen,
    bool SharedClassifier)
{
    public const int HeaderBytes = 7 * sizeof(int);

    /// <summary>run.c's head_size = dim / n_heads.</summary>
    public int HeadSize => Dim / NumHeads;

    /// <summary>Width of the key and value projections, n_kv_heads · head_size.</summary>
    public int KvDim => NumKvHeads * HeadSize;

    public override string ToString() =>
        $"dim={Dim} hidden_dim={HiddenDim} n_layers={NumLayers} n_heads={NumHeads} n_kv_heads={NumKvHeads} " +
        $"vocab_size={VocabSize} seq_len={SeqLen} ({(SharedClassifier ? "shared" : "separate")} classifier)";
}
