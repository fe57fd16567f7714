namespace Lowbit.Models.Tokenization;

/// <summary>SentencePiece.Type in sentencepiece_model.proto (the numbers are the wire values).</summary>
internal enum SentencePieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>One vocabulary entry of a SentencePiece model; "▁" (U+2581) stands for a space in <see cref="Piece"/>.</summary>
internal readonly record struct SentencePiece(string Piece, float Score, SentencePieceType Type);

/// <summary>
/// The parts of a SentencePiece <c>ModelProto</c> (google/sentencepiece src/sentencepiece_model.proto) that
/// Lowbit reads and writes. Field numbers, checked against that file at 273449044c (2025-02-27):
/// ModelProto { pieces = 1; trainer_spec = 2; normalizer_spec = 3 },
/// SentencePiece { piece = 1; score = 2; type = 3 },
/// TrainerSpec { model_type = 3 (UNIGRAM 1, BPE 2, WORD 3, CHAR 4); vocab_size = 4; treat_whitespace_as_suffix = 24;
/// byte_fallback = 35; unk_id = 40; bos_id = 41; eos_id = 42; pad_id = 43 },
/// NormalizerSpec { name = 1; precompiled_charsmap = 2; add_dummy_prefix = 3; remove_extra_whitespaces = 4;
/// escape_whitespaces = 5 }.
/// Defaults are the proto's: a field absent from the file keeps them.
/// </summary>
internal sealed class SentencePieceModel
{
    public const int ModelTypeUnigram = 1;
    public const int ModelTypeBpe = 2;

    public required IReadOnlyList<SentencePiece> Pieces { get; init; }
    public int ModelType { get; init; } = ModelTypeUnigram;
    public bool TreatWhitespaceAsSuffix { get; init; }
    public bool ByteFallback { get; init; }
    public int UnkId { get; init; }
    public int BosId { get; init; } = 1;
    public int EosId { get; init; } = 2;
    public int PadId { get; init; } = -1;
    public string NormalizerName { get; init; } = "";
    /// <summary>Byte length of the normalizer's precompiled character map (0: no character rewriting).</summary>
    public int PrecompiledCharsmapLength { get; init; }
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; } = true;
    public bool EscapeWhitespaces { get; init; } = true;

    /// <summary>Parses a serialized ModelProto; fields Lowbit does not use are skipped.</summary>
    public static SentencePieceModel Parse(ReadOnlySpan<byte> data)
    {
        var pieces = new List<SentencePiece>();
        int modelType = ModelTypeUnigram, unkId = 0, bosId = 1, eosId = 2, padId = -1;
        bool byteFallback = false, whitespaceAsSuffix = false, addDummyPrefix = true, removeExtraWhitespaces = true, escapeWhitespaces = true;
        string normalizerName = "";
        int charsmapLength = 0;

        var model = new ProtoReader(data);
        while (model.Next())
        {
            switch (model.Field)
            {
                case 1:
                    pieces.Add(ParsePiece(model.ReadBytes(), pieces.Count));
                    break;
                case 2:
                    var trainer = new ProtoReader(model.ReadBytes());
                    while (trainer.Next())
                    {
                        switch (trainer.Field)
                        {
                            case 3: modelType = (int)trainer.ReadVarint(); break;
                            case 24: whitespaceAsSuffix = trainer.ReadVarint() != 0; break;
                            case 35: byteFallback = trainer.ReadVarint() != 0; break;
                            case 40: unkId = (int)trainer.ReadVarint(); break;
                            case 41: bosId = (int)trainer.ReadVarint(); break;
                            case 42: eosId = (int)trainer.ReadVarint(); break;
                            case 43: padId = (int)trainer.ReadVarint(); break;
                            default: trainer.Skip(); break;
                        }
                    }
                    break;
                case 3:
                    var normalizer = new ProtoReader(model.ReadBytes());
                    while (normalizer.Next())
                    {
                        switch (normalizer.Field)
                        {
                            case 1: normalizerName = normalizer.ReadString(); break;
                            case 2: charsmapLength = normalizer.ReadBytes().Length; break;
                            case 3: addDummyPrefix = normalizer.ReadVarint() != 0; break;
                            case 4: removeExtraWhitespaces = normalizer.ReadVarint() != 0; break;
                            case 5: escapeWhitespaces = normalizer.ReadVarint() != 0; break;
                            default: normalizer.Skip(); break;
                        }
                    }
                    break;
                default:
                    model.Skip();
                    break;
            }
        }

        return new SentencePieceModel
        {
            Pieces = pieces,
            ModelType = modelType,
            TreatWhitespaceAsSuffix = whitespaceAsSuffix,
            ByteFallback = byteFallback,
            UnkId = unkId,
            BosId = bosId,
            EosId = eosId,
            PadId = padId,
            NormalizerName = normalizerName,
            PrecompiledCharsmapLength = charsmapLength,
            AddDummyPrefix = addDummyPrefix,
            RemoveExtraWhitespaces = removeExtraWhitespaces,
            EscapeWhitespaces = escapeWhitespaces,
        };
    }

    /// <summary>Serializes every field this type holds, defaults included, so a reader needs no defaults table.</summary>
    public byte[] Serialize()
    {
        var model = new ProtoWriter();
        foreach (SentencePiece p in Pieces)
        {
            var piece = new ProtoWriter();
            piece.WriteString(1, p.Piece);
            piece.WriteFloat(2, p.Score);
            piece.WriteVarint(3, (int)p.Type);
            model.WriteMessage(1, piece);
        }

        var trainer = new ProtoWriter();
        trainer.WriteVarint(3, ModelType);
        trainer.WriteVarint(4, Pieces.Count);
        trainer.WriteBool(24, TreatWhitespaceAsSuffix);
        trainer.WriteBool(35, ByteFallback);
        trainer.WriteVarint(40, UnkId);
        trainer.WriteVarint(41, BosId);
        trainer.WriteVarint(42, EosId);
        trainer.WriteVarint(43, PadId);
        model.WriteMessage(2, trainer);

        var normalizer = new ProtoWriter();
        normalizer.WriteString(1, NormalizerName);
        normalizer.WriteBool(3, AddDummyPrefix);
        normalizer.WriteBool(4, RemoveExtraWhitespaces);
        normalizer.WriteBool(5, EscapeWhitespaces);
        model.WriteMessage(3, normalizer);

        return model.ToArray();
    }

    private static SentencePiece ParsePiece(ReadOnlySpan<byte> data, int id)
    {
        string? piece = null;
        float score = 0;
        var type = SentencePieceType.Normal;
        var reader = new ProtoReader(data);
        while (reader.Next())
        {
            switch (reader.Field)
            {
                case 1: piece = reader.ReadString(); break;
                case 2: score = reader.ReadFloat(); break;
                case 3: type = (SentencePieceType)reader.ReadVarint(); break;
                default: reader.Skip(); break;
            }
        }
        return piece is null
            ? throw new InvalidDataException($"SentencePiece model: piece {id} has no text (field 1)")
            : new SentencePiece(piece, score, type);
    }
}
