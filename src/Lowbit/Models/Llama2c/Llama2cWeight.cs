namespace Lowbit.Models.Llama2c;

/// <summary>
/// The F32 arrays of a llama2.c checkpoint, in file order after the header. Shapes are per layer,
/// as PyTorch nn.Linear stores them ([out_features, in_features], row-major), which is also
/// Hugging Face's orientation; Q = n_heads · head_size, KV = n_kv_heads · head_size, S = seq_len.
/// </summary>
public enum Llama2cWeight
{
    /// <summary>[vocab, dim]</summary>
    TokenEmbedding,
    /// <summary>[layers][dim]</summary>
    RmsAtt,
    /// <summary>[layers][Q, dim]; RoPE pairs are interleaved rows (2i, 2i+1) within each head.</summary>
    Wq,
    /// <summary>[layers][KV, dim]; interleaved RoPE pairs as in Wq.</summary>
    Wk,
    /// <summary>[layers][KV, dim]</summary>
    Wv,
    /// <summary>[layers][dim, Q]</summary>
    Wo,
    /// <summary>[layers][dim]</summary>
    RmsFfn,
    /// <summary>[layers][hidden_dim, dim], the gate projection.</summary>
    W1,
    /// <summary>[layers][dim, hidden_dim], the down projection.</summary>
    W2,
    /// <summary>[layers][hidden_dim, dim], the up projection.</summary>
    W3,
    /// <summary>[dim]</summary>
    RmsFinal,
    /// <summary>[S, head_size / 2], cos of the RoPE angles; unused, run.c recomputes them.</summary>
    FreqCisReal,
    /// <summary>[S, head_size / 2], sin of the RoPE angles; unused.</summary>
    FreqCisImag,
    /// <summary>[vocab, dim]; the token embedding table itself when the classifier is shared.</summary>
    Wcls,
}
