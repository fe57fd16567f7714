using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Models;

/// <summary>One transformer block's weights (Hugging Face names in comments).</summary>
public sealed class LayerWeights : IDisposable
{
    public required Tensor AttentionNorm { get; init; }     // input_layernorm [dim] F32
    public required IWeight Query { get; set; }             // self_attn.q_proj [heads·D, dim]
    public required IWeight Key { get; set; }               // self_attn.k_proj [kvHeads·D, dim]
    public required IWeight Value { get; set; }             // self_attn.v_proj [kvHeads·D, dim]
    public required IWeight Output { get; set; }            // self_attn.o_proj [dim, heads·D]
    public Tensor? QueryBias { get; init; }                 // q_proj.bias [heads·D] F32 (Qwen2)
    public Tensor? KeyBias { get; init; }                   // k_proj.bias [kvHeads·D] F32
    public Tensor? ValueBias { get; init; }                 // v_proj.bias [kvHeads·D] F32
    public required Tensor FeedForwardNorm { get; init; }   // post_attention_layernorm [dim] F32
    public required IWeight Gate { get; set; }              // mlp.gate_proj (w1) [hidden, dim]
    public required IWeight Up { get; set; }                // mlp.up_proj (w3) [hidden, dim]
    public required IWeight Down { get; set; }              // mlp.down_proj (w2) [dim, hidden]

    /// <summary>The linear layers by their Hugging Face name within the block.</summary>
    public IEnumerable<(string Name, IWeight Weight)> Linears()
    {
        yield return ("self_attn.q_proj", Query);
        yield return ("self_attn.k_proj", Key);
        yield return ("self_attn.v_proj", Value);
        yield return ("self_attn.o_proj", Output);
        yield return ("mlp.gate_proj", Gate);
        yield return ("mlp.up_proj", Up);
        yield return ("mlp.down_proj", Down);
    }

    /// <summary>Replaces the linear layer <paramref name="name"/> (a name <see cref="Linears"/> yields).</summary>
    public void SetLinear(string name, IWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        switch (name)
        {
            case "self_attn.q_proj": Query = weight; break;
            case "self_attn.k_proj": Key = weight; break;
            case "self_attn.v_proj": Value = weight; break;
            case "self_attn.o_proj": Output = weight; break;
            case "mlp.gate_proj": Gate = weight; break;
            case "mlp.up_proj": Up = weight; break;
            case "mlp.down_proj": Down = weight; break;
            default: throw new ArgumentException($"A transformer block has no linear layer \"{name}\".", nameof(name));
        }
    }

    public void Dispose()
    {
        AttentionNorm.Dispose();
        FeedForwardNorm.Dispose();
        QueryBias?.Dispose();
        KeyBias?.Dispose();
        ValueBias?.Dispose();
        foreach (var (_, weight) in Linears())
            weight.Dispose();
    }
}

/// <summary>All weights of a Llama-family model. Matrices stay where the checkpoint put them
/// (memory-mapped views); only the small norm and bias vectors are widened to F32 copies.</summary>
public sealed class ModelWeights : IDisposable
{
    public required Tensor Embedding { get; init; }         // model.embed_tokens [vocab, dim]
    public required LayerWeights[] Layers { get; init; }
    public required Tensor FinalNorm { get; init; }         // model.norm [dim] F32
    public required IWeight Classifier { get; set; }        // lm_head [vocab, dim], or the embedding when tied

    /// <summary>Every linear layer with its full Hugging Face name (the classifier last).</summary>
    public IEnumerable<(string Name, IWeight Weight)> Linears()
    {
        for (int i = 0; i < Layers.Length; i++)
            foreach (var (name, weight) in Layers[i].Linears())
                yield return ($"model.layers.{i}.{name}", weight);
        yield return ("lm_head", Classifier);
    }

    /// <summary>Replaces the linear layer with full Hugging Face name <paramref name="name"/>
    /// ("model.layers.3.mlp.down_proj", "lm_head").</summary>
    public void SetLinear(string name, IWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (name == "lm_head")
        {
            Classifier = weight;
            return;
        }

        const string prefix = "model.layers.";
        int dot = name.StartsWith(prefix, StringComparison.Ordinal) ? name.IndexOf('.', prefix.Length) : -1;
        if (dot < 0 || !int.TryParse(name.AsSpan(prefix.Length, dot - prefix.Length), out int layer) || (uint)layer >= (uint)Layers.Length)
            throw new ArgumentException($"The model has no linear layer \"{name}\".", nameof(name));
        Layers[layer].SetLinear(name[(dot + 1)..], weight);
    }

    /// <summary>Bytes one decode step reads: every linear layer plus one embedding row.</summary>
    public long DecodeBytes
    {
        get
        {
            long total = 0;
            foreach (var (_, weight) in Linears())
                total += weight.ByteLength;
            return total + Embedding.ByteLength / Math.Max(1, Embedding.Shape[0]);
        }
    }

    public void Dispose()
    {
        foreach (var layer in Layers)
            layer.Dispose();
        FinalNorm.Dispose();
        if (Classifier is DenseWeight dense && dense.Tensor == Embedding)
            return;
        Classifier.Dispose();
    }
}
