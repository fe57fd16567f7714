using System.Text.Json;
using Lowbit.Models.IO;
using Lowbit.Tensors;

namespace Lowbit.Models.HuggingFace;

/// <summary>Writes a <see cref="ModelConfig"/> as a Hugging Face <c>config.json</c> that transformers and
/// <see cref="ModelConfigReader"/> both load; written to a temporary sibling and renamed into place.</summary>
public static class ModelConfigWriter
{
    public static void Write(ModelConfig config, string path)
    {
        string temp = AtomicPath.TempSibling(path);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
                WriteJson(config, json);
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            AtomicPath.TryDelete(temp);
            throw;
        }
    }

    private static void WriteJson(ModelConfig c, Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteStartArray("architectures");
        json.WriteStringValue(c.Architecture);
        json.WriteEndArray();
        json.WriteString("model_type", c.Architecture switch
        {
            "MistralForCausalLM" => "mistral",
            "Qwen2ForCausalLM" => "qwen2",
            _ => "llama",
        });
        json.WriteString("hidden_act", "silu");
        json.WriteNumber("hidden_size", c.HiddenSize);
        json.WriteNumber("intermediate_size", c.IntermediateSize);
        json.WriteNumber("num_hidden_layers", c.NumLayers);
        json.WriteNumber("num_attention_heads", c.NumHeads);
        json.WriteNumber("num_key_value_heads", c.NumKvHeads);
        json.WriteNumber("head_dim", c.HeadDim);
        json.WriteNumber("vocab_size", c.VocabSize);
        json.WriteNumber("max_position_embeddings", c.MaxPositionEmbeddings);
        json.WriteNumber("rms_norm_eps", c.RmsNormEps);
        json.WriteNumber("rope_theta", c.RopeTheta);
        if (c.RopeScaling is { } s)
        {
            json.WriteStartObject("rope_scaling");
            json.WriteString("rope_type", s.Type);
            json.WriteNumber("factor", s.Factor);
            json.WriteNumber("low_freq_factor", s.LowFreqFactor);
            json.WriteNumber("high_freq_factor", s.HighFreqFactor);
            json.WriteNumber("original_max_position_embeddings", s.OriginalMaxPositionEmbeddings);
            json.WriteEndObject();
        }
        json.WriteBoolean("tie_word_embeddings", c.TieWordEmbeddings);
        json.WriteBoolean("attention_bias", c.AttentionBias);
        if (c.TorchDType is { } dtype)
        {
            json.WriteString("torch_dtype", dtype switch
            {
                DType.F32 => "float32",
                DType.BF16 => "bfloat16",
                DType.F16 => "float16",
                _ => throw new ArgumentException($"torch_dtype cannot be {dtype}.", nameof(c)),
            });
        }
        if (c.BosTokenId is { } bos)
            json.WriteNumber("bos_token_id", bos);
        if (c.EosTokenIds.Count == 1)
            json.WriteNumber("eos_token_id", c.EosTokenIds[0]);
        else if (c.EosTokenIds.Count > 1)
        {
            json.WriteStartArray("eos_token_id");
            foreach (int id in c.EosTokenIds)
                json.WriteNumberValue(id);
            json.WriteEndArray();
        }
        json.WriteEndObject();
    }
}
