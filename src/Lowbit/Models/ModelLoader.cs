using Lowbit.Models.HuggingFace;
using Lowbit.Quantization.Checkpoints;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Models;

/// <summary>
/// Builds <see cref="ModelWeights"/> from a Hugging Face checkpoint: every tensor the config implies
/// is looked up by its Hugging Face name and its shape checked against config.json. Matrices stay
/// memory-mapped; norm and bias vectors are widened to small F32 copies.
/// </summary>
public static class ModelLoader
{
    public static ModelWeights LoadWeights(CheckpointTensors checkpoint, ModelConfig c)
    {
        var loader = new Loader(checkpoint);
        var layers = new LayerWeights[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            layers[i] = new LayerWeights
            {
                AttentionNorm = loader.Vector(p + "input_layernorm.weight", c.HiddenSize, "hidden_size"),
                Query = loader.Matrix(p + "self_attn.q_proj.weight", c.QDim, c.HiddenSize, "num_attention_heads·head_dim, hidden_size"),
                Key = loader.Matrix(p + "self_attn.k_proj.weight", c.KvDim, c.HiddenSize, "num_key_value_heads·head_dim, hidden_size"),
                Value = loader.Matrix(p + "self_attn.v_proj.weight", c.KvDim, c.HiddenSize, "num_key_value_heads·head_dim, hidden_size"),
                Output = loader.Matrix(p + "self_attn.o_proj.weight", c.HiddenSize, c.QDim, "hidden_size, num_attention_heads·head_dim"),
                QueryBias = c.AttentionBias ? loader.Vector(p + "self_attn.q_proj.bias", c.QDim, "num_attention_heads·head_dim") : null,
                KeyBias = c.AttentionBias ? loader.Vector(p + "self_attn.k_proj.bias", c.KvDim, "num_key_value_heads·head_dim") : null,
                ValueBias = c.AttentionBias ? loader.Vector(p + "self_attn.v_proj.bias", c.KvDim, "num_key_value_heads·head_dim") : null,
                FeedForwardNorm = loader.Vector(p + "post_attention_layernorm.weight", c.HiddenSize, "hidden_size"),
                Gate = loader.Matrix(p + "mlp.gate_proj.weight", c.IntermediateSize, c.HiddenSize, "intermediate_size, hidden_size"),
                Up = loader.Matrix(p + "mlp.up_proj.weight", c.IntermediateSize, c.HiddenSize, "intermediate_size, hidden_size"),
                Down = loader.Matrix(p + "mlp.down_proj.weight", c.HiddenSize, c.IntermediateSize, "hidden_size, intermediate_size"),
            };
        }
        var embedding = loader.Tensor("model.embed_tokens.weight", c.VocabSize, c.HiddenSize, "vocab_size, hidden_size");
        // Tied models may still store lm_head; untied ones must.
        IWeight classifier = c.TieWordEmbeddings && !checkpoint.Contains("lm_head.weight")
            ? new DenseWeight(embedding)
            : loader.Matrix("lm_head.weight", c.VocabSize, c.HiddenSize, "vocab_size, hidden_size");
        return new ModelWeights
        {
            Embedding = embedding,
            Layers = layers,
            FinalNorm = loader.Vector("model.norm.weight", c.HiddenSize, "hidden_size"),
            Classifier = classifier,
        };
    }

    private readonly struct Loader(CheckpointTensors checkpoint)
    {
        public Tensor Tensor(string name, int rows, int columns, string fields) =>
            checkpoint.Get(name, [rows, columns], $"config.json ({fields})");

        /// <summary>A linear layer's weight: dense, or in the format a quantized checkpoint's metadata names.</summary>
        public IWeight Matrix(string name, int rows, int columns, string fields) =>
            QuantizedCheckpoint.TryLoad(checkpoint, name[..^".weight".Length], rows, columns)
            ?? new DenseWeight(Tensor(name, rows, columns, fields));

        /// <summary>A 1-D tensor widened to an F32 copy (norm weights, biases: a few KB each).</summary>
        public Tensor Vector(string name, int length, string field)
        {
            var source = checkpoint.Get(name, [length], $"config.json ({field})");
            var copy = Lowbit.Tensors.Tensor.Allocate(DType.F32, length);
            DTypeConversion.ToSingle(source, copy.AsSpan<float>());
            return copy;
        }
    }
}
